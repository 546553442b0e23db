#pragma once

// Services as the API shows them (GET /v1/services[/:name], and their summary in
// GET /v1/status): the deployed services and any service that still has allocations,
// each with its healthy/desired replicas and its live allocations. Image and desired
// replicas are what is deployed for the service (DeployManager::deployed(): its last
// successful rollout, also after a deploy that failed partway).

#include <boost/json/array.hpp>

#include "api/api.h"

namespace mill::api {

boost::json::array services_json(const ApiContext& ctx);

}  // namespace mill::api
