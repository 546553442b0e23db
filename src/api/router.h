#pragma once

// Matches a request to a route by method and path pattern ("/v1/secrets/:name").
// A path that matches some pattern under another method is a 405 with Allow; no
// match is a 404. Pure: no I/O.

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "net/http.h"

namespace mill::api {

using Params = std::map<std::string, std::string, std::less<>>;
using RouteHandler = std::function<net::HttpResponse(const net::HttpRequest&, const Params&)>;

class Router {
 public:
  void add(std::string method, std::string pattern, RouteHandler handler);
  net::HttpResponse dispatch(const net::HttpRequest& request) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    RouteHandler handler;
  };
  static bool match(const Route& route, const std::vector<std::string_view>& path, Params& params);
  std::vector<Route> routes_;
};

}  // namespace mill::api
