#include "proxy/rules.h"

#include <algorithm>
#include <vector>

#include "net/http.h"

namespace mill::proxy {

namespace {

using http::field;

constexpr std::string_view kXForwardedFor = "X-Forwarded-For";
constexpr std::string_view kXForwardedProto = "X-Forwarded-Proto";
constexpr std::string_view kXForwardedHost = "X-Forwarded-Host";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The comma-separated tokens of every instance of a header.
template <class Fields, class Name>
std::vector<std::string> tokens(const Fields& f, Name name) {
  std::vector<std::string> out;
  auto range = f.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view v = it->value();
    while (!v.empty()) {
      auto comma = v.find(',');
      auto t = trim(v.substr(0, comma));
      if (!t.empty()) out.emplace_back(t);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return out;
}

template <class Fields>
bool has_token(const Fields& f, field name, std::string_view token) {
  for (const auto& t : tokens(f, name)) {
    if (net::iequals(t, token)) return true;
  }
  return false;
}

// RFC 9110 7.6.1: hop-by-hop fields, plus the ones proxies commonly drop as such.
template <class Fields>
void drop_hop_by_hop(Fields& f, bool keep_upgrade) {
  for (const auto& name : tokens(f, field::connection)) {
    if (keep_upgrade && net::iequals(name, "upgrade")) continue;
    // Never let a client strip what framing or routing depends on.
    if (net::iequals(name, "host") || net::iequals(name, "content-length") ||
        net::iequals(name, "transfer-encoding")) {
      continue;
    }
    f.erase(name);
  }
  f.erase(field::connection);
  f.erase(field::keep_alive);
  f.erase(field::proxy_connection);
  f.erase(field::te);
  f.erase(field::trailer);
  f.erase(field::proxy_authenticate);
  f.erase(field::proxy_authorization);
  if (!keep_upgrade) f.erase(field::upgrade);
}

}  // namespace

std::string check_request(const http::request_header<>& req) {
  const auto cls = req.count(field::content_length);
  const auto tes = req.count(field::transfer_encoding);
  if (cls > 1) return "more than one Content-Length";
  if (cls == 1) {
    std::string_view v = req[field::content_length];
    if (v.empty() ||
        !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return "invalid Content-Length";
    }
  }
  if (tes > 0) {
    if (cls > 0) return "both Content-Length and Transfer-Encoding";
    if (req.version() < 11) return "Transfer-Encoding in an HTTP/1.0 request";
    auto list = tokens(req, field::transfer_encoding);
    if (tes > 1 || list.size() != 1 || !net::iequals(list[0], "chunked")) {
      return "unsupported Transfer-Encoding (only \"chunked\" is accepted)";
    }
  }
  const auto hosts = req.count(field::host);
  if (hosts > 1) return "more than one Host header";
  if (req.version() >= 11 && hosts == 0) return "missing Host header";
  return {};
}

bool is_upgrade(const http::request_header<>& req) {
  return req.count(field::upgrade) == 1 && has_token(req, field::connection, "upgrade");
}

bool expects_continue(const http::request_header<>& req) {
  return net::iequals(trim(req[field::expect]), "100-continue");
}

bool is_idempotent(const http::request_header<>& req) {
  switch (req.method()) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::put:
    case http::verb::delete_:
    case http::verb::trace:
      return true;
    default:
      return false;
  }
}

void prepare_request(http::request_header<>& req, const RequestContext& ctx) {
  const bool upgrade = is_upgrade(req);
  std::string forwarded_host(req[field::host]);
  std::string xff;
  if (ctx.trust_forwarded) {
    // Several headers are one list (RFC 9110 5.3).
    for (const auto& t : tokens(req, kXForwardedFor)) {
      xff += t;
      xff += ", ";
    }
  }
  xff += ctx.client_ip;
  drop_hop_by_hop(req, upgrade);
  req.erase(field::expect);
  req.set(kXForwardedFor, xff);
  if (!ctx.trust_forwarded || req.count(kXForwardedProto) == 0) {
    req.set(kXForwardedProto, ctx.tls ? "https" : "http");
  }
  if (!ctx.trust_forwarded || req.count(kXForwardedHost) == 0) {
    if (forwarded_host.empty()) {
      req.erase(kXForwardedHost);
    } else {
      req.set(kXForwardedHost, forwarded_host);
    }
  }
  req.version(11);
  if (upgrade) req.set(field::connection, "upgrade");
}

void prepare_response(http::response_header<>& res, KeepUpgrade keep) {
  const bool upgrade = keep == KeepUpgrade::kYes;
  drop_hop_by_hop(res, upgrade);
  if (upgrade) res.set(field::connection, "upgrade");
}

}  // namespace mill::proxy
