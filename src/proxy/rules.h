#pragma once

// What the proxy checks and rewrites in the messages it passes on (no I/O). Beast
// header types, so only the proxy module includes it.

#include <boost/beast/http/message.hpp>
#include <string>
#include <string_view>

namespace mill::proxy {

namespace http = boost::beast::http;

// Why a request must be refused (400) before it goes anywhere, or "" when it may go:
// request smuggling defences (both Content-Length and Transfer-Encoding, several or
// non-numeric Content-Lengths, a Transfer-Encoding other than exactly "chunked",
// Transfer-Encoding on HTTP/1.0), a missing or repeated Host on HTTP/1.1.
std::string check_request(const http::request_header<>& req);

bool is_upgrade(const http::request_header<>& req);  // Connection: upgrade + Upgrade
bool expects_continue(const http::request_header<>& req);
bool is_idempotent(const http::request_header<>& req);

struct RequestContext {
  std::string_view client_ip;
  bool tls = false;
  bool trust_forwarded = false;  // keep and extend a client's X-Forwarded-For
};

// The request as the upstream gets it: hop-by-hop headers (and those the Connection
// header names) removed, Upgrade kept for upgrades, Expect removed (the proxy answered
// it), X-Forwarded-For / -Proto / -Host set, HTTP/1.1 with keep-alive.
void prepare_request(http::request_header<>& req, const RequestContext& ctx);

enum class KeepUpgrade { kNo, kYes };
// The response as the client gets it: hop-by-hop headers removed (Upgrade and
// Connection: upgrade kept for a 101).
void prepare_response(http::response_header<>& res, KeepUpgrade keep = KeepUpgrade::kNo);

}  // namespace mill::proxy
