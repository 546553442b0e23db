#include "api/router.h"

#include "api/responses.h"

namespace mill::api {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  return out;
}

}  // namespace

void Router::add(std::string method, std::string pattern, RouteHandler handler) {
  Route r;
  r.method = std::move(method);
  for (auto s : split_path(pattern)) r.segments.emplace_back(s);
  r.handler = std::move(handler);
  routes_.push_back(std::move(r));
}

bool Router::match(const Route& route, const std::vector<std::string_view>& path, Params& params) {
  if (route.segments.size() != path.size()) return false;
  Params found;
  for (size_t i = 0; i < path.size(); ++i) {
    const std::string& seg = route.segments[i];
    if (!seg.empty() && seg[0] == ':') {
      found.emplace(seg.substr(1), net::percent_decode(path[i]));
    } else if (seg != path[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

net::HttpResponse Router::dispatch(const net::HttpRequest& request) const {
  auto path = split_path(request.path);
  std::string allow;
  for (const auto& route : routes_) {
    Params params;
    if (!match(route, path, params)) continue;
    if (route.method == request.method) return route.handler(request, params);
    if (!allow.empty()) allow += ", ";
    allow += route.method;
  }
  if (!allow.empty()) {
    auto r = error_response(405, "method " + request.method + " not allowed on " + request.path +
                                     " (allowed: " + allow + ")");
    r.headers.push_back({"Allow", allow});
    return r;
  }
  return error_response(404, "no such route: " + request.path);
}

}  // namespace mill::api
