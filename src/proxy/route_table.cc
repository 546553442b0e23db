#include "proxy/route_table.h"

#include <algorithm>

namespace mill::proxy {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

}  // namespace

std::string normalize_host(std::string_view h) {
  if (h.empty()) return {};
  if (h.front() == '[') {
    // An IPv6 literal: keep it whole, drop a port.
    auto close = h.find(']');
    if (close == std::string_view::npos) return {};
    std::string out(h.substr(0, close + 1));
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
  }
  if (auto colon = h.find(':'); colon != std::string_view::npos) {
    auto port = h.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return {};
    }
    h = h.substr(0, colon);
  }
  if (!h.empty() && h.back() == '.') h.remove_suffix(1);
  if (h.empty() || h.size() > 253) return {};
  std::string out;
  out.reserve(h.size());
  for (char c : h) {
    char l = lower(c);
    if (!host_char(l)) return {};
    out += l;
  }
  return out;
}

std::string_view target_path(std::string_view target, std::string_view* host) {
  auto scheme = target.find("://");
  if (!target.empty() && target.front() != '/' && scheme != std::string_view::npos) {
    auto rest = target.substr(scheme + 3);
    auto slash = rest.find_first_of("/?");
    if (host) *host = rest.substr(0, slash);
    target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    if (!target.empty() && target.front() == '?') return "/";
  }
  auto q = target.find_first_of("?#");
  return target.substr(0, q);
}

bool path_matches(std::string_view prefix, std::string_view path) {
  if (!path.starts_with(prefix)) return false;
  if (prefix.size() == path.size() || prefix.ends_with('/')) return true;
  return path[prefix.size()] == '/';
}

RouteTable::RouteTable(const std::vector<RouteKey>& routes) {
  for (size_t i = 0; i < routes.size(); ++i) {
    Entry e;
    e.index = i;
    e.path = routes[i].path.empty() ? "/" : routes[i].path;
    const std::string& h = routes[i].host;
    if (h == "*") {
      e.wildcard = true;  // empty suffix: any host
    } else if (h.starts_with("*.")) {
      e.wildcard = true;
      e.host = h.substr(1);
    } else {
      e.host = h;
    }
    std::transform(e.host.begin(), e.host.end(), e.host.begin(), lower);
    entries_.push_back(std::move(e));
  }
  std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    if (a.wildcard != b.wildcard) return !a.wildcard;
    if (a.wildcard && a.host.size() != b.host.size()) return a.host.size() > b.host.size();
    return a.path.size() > b.path.size();
  });
}

size_t RouteTable::match(std::string_view host, std::string_view path) const {
  for (const auto& e : entries_) {
    if (e.wildcard) {
      // "*.example.com" needs at least one label before the suffix.
      if (!e.host.empty() && (host.size() <= e.host.size() || !host.ends_with(e.host))) continue;
    } else if (host != e.host) {
      continue;
    }
    if (path_matches(e.path, path)) return e.index;
  }
  return npos;
}

}  // namespace mill::proxy
