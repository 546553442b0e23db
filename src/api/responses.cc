#include "api/responses.h"

#include "model/json.h"

namespace mill::api {

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kUnauthenticated:
      return 401;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kCompacted:
      return 410;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kTimeout:
      return 504;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

net::HttpResponse json_response(int status, const boost::json::value& body) {
  return json_text_response(status, model::serialize(body));
}

net::HttpResponse json_text_response(int status, std::string body) {
  net::HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.body += '\n';
  return r;
}

net::HttpResponse error_response(int status, std::string_view message) {
  return json_response(status, boost::json::object{{"error", message}});
}

net::HttpResponse error_response(const Error& error) {
  return error_response(http_status(error.code), error.message);
}

}  // namespace mill::api
