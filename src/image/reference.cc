#include "image/reference.h"

#include <algorithm>
#include <cctype>

namespace mill::image {
namespace {

constexpr size_t kMaxNameLength = 255;  // registry + "/" + repository, as Docker
constexpr size_t kMaxTagLength = 128;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

Unexpected bad(std::string_view text, const std::string& why) {
  return make_error(ErrorCode::kInvalidArgument,
                    "invalid image reference '" + std::string(text) + "': " + why);
}

// path-component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
bool valid_path_component(std::string_view c) {
  if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (is_lower_alnum(c[i])) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < c.size() && !is_lower_alnum(c[i])) ++i;
    std::string_view sep = c.substr(start, i - start);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
  }
  return true;
}

// domain: label(.label)*[:port] with labels [A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?, or
// a bracketed IPv6 address with an optional port.
bool valid_domain(std::string_view d) {
  if (d.empty()) return false;
  std::string_view host = d;
  std::string_view port;
  if (d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    for (char c : d.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':') return false;
    }
    std::string_view rest = d.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    port = rest.substr(1);
    host = {};
  } else if (size_t colon = d.find(':'); colon != std::string_view::npos) {
    host = d.substr(0, colon);
    port = d.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (!port.empty() || d.find(':') != std::string_view::npos) {
    if (port.empty() || port.size() > 5) return false;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    if (std::stoi(std::string(port)) > 65535) return false;
  }
  if (d.front() == '[') return true;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view label = host.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || !is_alnum(label.front()) || !is_alnum(label.back())) return false;
    for (char c : label) {
      if (!is_alnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

// tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > kMaxTagLength) return false;
  if (!is_alnum(t.front()) && t.front() != '_') return false;
  for (char c : t) {
    if (!is_alnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool is_hex_lower(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

bool is_valid_digest(std::string_view digest) {
  if (!digest.starts_with("sha256:")) return false;
  std::string_view hex = digest.substr(7);
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!is_hex_lower(c)) return false;
  }
  return true;
}

bool is_loopback_host(std::string_view host_port) {
  std::string_view host = host_port;
  if (host.starts_with("[")) {
    size_t close = host.find(']');
    return close != std::string_view::npos && host.substr(1, close - 1) == "::1";
  }
  if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost") return true;
  if (!host.starts_with("127.")) return false;
  // A dotted quad under 127/8, not a name such as "127.example.com".
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

std::string Reference::str() const {
  std::string out = registry + "/" + repository;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

std::string Reference::endpoint() const {
  return registry == kDockerHub ? "registry-1.docker.io" : registry;
}

Result<Reference> parse_reference(std::string_view text) {
  if (text.empty()) return bad(text, "empty");
  Reference ref;
  std::string_view rest = text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (!is_valid_digest(ref.digest)) {
      return bad(text, "digest must be sha256: followed by 64 lowercase hex digits");
    }
  }
  // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!valid_tag(ref.tag)) return bad(text, "invalid tag '" + ref.tag + "'");
  }
  if (rest.empty()) return bad(text, "no repository");

  std::string_view name = rest;
  size_t first = name.find('/');
  std::string_view head = name.substr(0, first);
  bool has_domain = first != std::string_view::npos &&
                    (head.find_first_of(".:") != std::string_view::npos || head == "localhost" ||
                     head.starts_with("[") || std::any_of(head.begin(), head.end(), [](char c) {
                       return std::isupper(static_cast<unsigned char>(c));
                     }));
  if (has_domain) {
    if (!valid_domain(head)) return bad(text, "invalid registry '" + std::string(head) + "'");
    ref.registry = std::string(head);
    name = name.substr(first + 1);
  } else {
    ref.registry = std::string(kDockerHub);
  }
  if (ref.registry == "index.docker.io") ref.registry = std::string(kDockerHub);
  ref.repository = std::string(name);
  if (ref.registry == kDockerHub && ref.repository.find('/') == std::string::npos) {
    ref.repository = "library/" + ref.repository;
  }
  size_t start = 0;
  while (true) {
    size_t next = ref.repository.find('/', start);
    std::string_view component =
        std::string_view(ref.repository)
            .substr(start, next == std::string::npos ? std::string::npos : next - start);
    if (!valid_path_component(component)) {
      bool upper = std::any_of(component.begin(), component.end(),
                               [](char c) { return std::isupper(static_cast<unsigned char>(c)); });
      return bad(text, upper ? "repository name must be lowercase"
                             : "invalid repository name '" + ref.repository + "'");
    }
    if (next == std::string::npos) break;
    start = next + 1;
  }
  if (ref.registry.size() + 1 + ref.repository.size() > kMaxNameLength) {
    return bad(text, "name longer than 255 characters");
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace mill::image
