// GET /v1/metrics: the registry in Prometheus text format.

#include "api/api.h"

namespace mill::api {

void add_metrics_routes(Router& router, const ApiContext& ctx) {
  router.add("GET", "/v1/metrics", [&ctx](const net::HttpRequest&, const Params&) {
    net::HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = ctx.metrics->render();
    return r;
  });
}

}  // namespace mill::api
