#pragma once

// Which route a request takes (pure: no sockets, no clock). A route names a host —
// exact ("office.example.com") or a wildcard ("*.example.com", one or more labels in
// front of the suffix) — and a path prefix that matches on segment boundaries ("/api"
// matches "/api" and "/api/users", not "/apix").
//
// Precedence: an exact host beats a wildcard, a longer wildcard suffix beats a
// shorter one, and among the routes of the winning host the longest path prefix wins.
// A route whose host is "*" matches any host, last.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mill::proxy {

struct RouteKey {
  std::string host;  // lowercase
  std::string path;  // starts with "/"
};

// The host of a request as routes compare it: lowercase, without a port or a
// trailing dot. Empty when the Host header is not a valid host.
std::string normalize_host(std::string_view host_header);

// The path of a request target: origin form ("/a?b") or absolute form
// ("http://h/a?b"), without the query. For absolute form, `host` receives its host.
std::string_view target_path(std::string_view target, std::string_view* host = nullptr);

// True when `path` starts with `prefix` at a segment boundary.
bool path_matches(std::string_view prefix, std::string_view path);

class RouteTable {
 public:
  RouteTable() = default;
  // The index of each route in `routes` is what match() returns.
  explicit RouteTable(const std::vector<RouteKey>& routes);

  // The index of the route for this normalized host and path, or npos.
  size_t match(std::string_view host, std::string_view path) const;

  static constexpr size_t npos = static_cast<size_t>(-1);

 private:
  struct Entry {
    std::string host;  // exact host, or the suffix of a wildcard (".example.com")
    bool wildcard = false;
    std::string path;
    size_t index = 0;
  };
  // Exact hosts first, then wildcards by suffix length, each by path length: the first
  // match is the best one.
  std::vector<Entry> entries_;
};

}  // namespace mill::proxy
