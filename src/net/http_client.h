#pragma once

// A small synchronous HTTP/1.1 client for the CLI, the agent's node protocol and
// tests. One connection per call; plain HTTP (TLS joins with the registry client).

#include <chrono>
#include <string>
#include <vector>

#include "common/result.h"
#include "net/http.h"

namespace mill::net {

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";
  std::vector<Header> headers;
  std::string body;
  std::string content_type;  // sets Content-Type when non-empty
  std::chrono::milliseconds timeout{10000};
};

struct ClientResponse {
  int status = 0;
  std::vector<Header> headers;
  std::string body;
  const std::string* header(std::string_view name) const;
};

// address: "host:port" or "http://host:port". kUnavailable when the server cannot be
// reached, kTimeout when it does not answer in time.
Result<ClientResponse> http_request(const std::string& address, const ClientRequest& request);

// Strips "http://" and a trailing "/" so "http://127.0.0.1:4400/" -> "127.0.0.1:4400".
std::string normalize_address(std::string_view address);

}  // namespace mill::net
