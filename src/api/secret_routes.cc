// /v1/secrets: names only in listings; only GET /v1/secrets/:name returns a value.

#include <boost/json.hpp>

#include "api/api.h"
#include "api/responses.h"
#include "model/json.h"

namespace mill::api {

namespace json = boost::json;

void add_secret_routes(Router& router, const ApiContext& ctx) {
  router.add("GET", "/v1/secrets", [&ctx](const net::HttpRequest&, const Params&) {
    auto list = ctx.secrets->list();
    if (!list) return error_response(list.error());
    json::array out;
    for (const auto& s : *list)
      out.push_back(json::object{{"name", s.name}, {"updated_at", s.updated_at}});
    return json_response(200, out);
  });

  router.add("GET", "/v1/secrets/:name", [&ctx](const net::HttpRequest&, const Params& p) {
    const std::string& name = p.find("name")->second;
    auto value = ctx.secrets->get(name);
    if (!value) return error_response(value.error());
    return json_response(200, json::object{{"name", name}, {"value", *value}});
  });

  router.add("PUT", "/v1/secrets/:name", [&ctx](const net::HttpRequest& req, const Params& p) {
    const std::string& name = p.find("name")->second;
    if (auto valid = server::validate_secret_name(name); !valid)
      return error_response(valid.error());
    auto body = model::parse_object(req.body, {"value"});
    if (!body) return error_response(body.error());
    auto value = model::get_string(*body, "value", true);
    if (!value) return error_response(value.error());
    if (auto put = ctx.secrets->put(name, *value); !put) return error_response(put.error());
    return json_response(200, json::object{{"name", name}});
  });

  router.add("DELETE", "/v1/secrets/:name", [&ctx](const net::HttpRequest&, const Params& p) {
    const std::string& name = p.find("name")->second;
    if (auto removed = ctx.secrets->remove(name); !removed) return error_response(removed.error());
    return json_response(200, json::object{{"name", name}, {"deleted", true}});
  });
}

}  // namespace mill::api
