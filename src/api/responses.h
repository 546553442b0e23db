#pragma once

// Building API responses: JSON bodies, {"error": "..."} errors, and the one mapping
// from ErrorCode to HTTP status.

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

#include "common/error.h"
#include "net/http.h"

namespace mill::api {

int http_status(ErrorCode code);
net::HttpResponse json_response(int status, const boost::json::value& body);
// A body already encoded as JSON (by a codec such as model/node_protocol.h).
net::HttpResponse json_text_response(int status, std::string body);
net::HttpResponse error_response(int status, std::string_view message);
net::HttpResponse error_response(const Error& error);

}  // namespace mill::api
