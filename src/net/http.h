#pragma once

// Plain HTTP request/response values shared by the server, the client and every
// handler. No Beast or Asio here: only net/*.cc include those, so the rest of Mill
// compiles fast.

#include <string>
#include <string_view>
#include <vector>

namespace mill::net {

struct Header {
  std::string name;
  std::string value;
};

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // as sent: "/v1/logs/web?tail=10"
  std::string path;    // target up to '?', percent-decoding not applied
  std::string query;   // after '?', without it
  std::vector<Header> headers;
  std::string body;
  std::string remote;  // peer address, "127.0.0.1:51234"

  // First header with this name (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
  // Value of a query parameter (percent-decoded), or "" when absent.
  std::string query_param(std::string_view key) const;
  bool has_query_param(std::string_view key) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<Header> headers;
};

// "host:port" split; host may be empty (":4400") or bracketed IPv6 ("[::1]:80").
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
bool parse_host_port(std::string_view text, HostPort& out);

bool iequals(std::string_view a, std::string_view b);
std::string percent_decode(std::string_view in);
std::string_view reason_phrase(int status);

}  // namespace mill::net
