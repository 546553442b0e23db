// Fuzzes request routing with arbitrary methods and paths: every request gets a 2xx
// from a matching route, or a 404/405 with a JSON error, never a crash.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/router.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const mill::api::Router* router = [] {
    auto* r = new mill::api::Router();
    auto ok = [](const mill::net::HttpRequest&, const mill::api::Params& p) {
      mill::net::HttpResponse res;
      for (const auto& [k, v] : p) res.body += k + "=" + v;
      return res;
    };
    r->add("GET", "/v1/secrets", ok);
    r->add("GET", "/v1/secrets/:name", ok);
    r->add("PUT", "/v1/secrets/:name", ok);
    r->add("POST", "/v1/nodes/:id/drain", ok);
    return r;
  }();
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t space = input.find(' ');
  mill::net::HttpRequest req;
  req.method = input.substr(0, space);
  req.path = space == std::string::npos ? "" : input.substr(space + 1);
  auto res = router->dispatch(req);
  if (res.status != 200 && res.status != 404 && res.status != 405) std::abort();
  if (res.status != 200 && res.body.find("\"error\"") == std::string::npos) std::abort();
  return 0;
}
