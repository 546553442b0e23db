#pragma once

// Services as the API shows them (GET /v1/services, and their summary in
// GET /v1/status): the deployed config's services and any service that still has
// allocations, each with its healthy/desired replicas and its live allocations.

#include <boost/json/array.hpp>

#include "api/api.h"

namespace mill::api {

boost::json::array services_json(const ApiContext& ctx);

}  // namespace mill::api
