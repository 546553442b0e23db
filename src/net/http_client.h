#pragma once

// A small synchronous HTTP/1.1 client for the CLI, the agent's node protocol, the
// registry client and tests. One connection per call. HTTPS verifies the peer's
// certificate chain (system CAs plus an optional extra CA file, or only the CAs given
// in memory) and its host name or IP address, and can present a client certificate.
// Redirects are never followed here: the caller sees the 3xx and decides.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "net/http.h"

namespace mill::net {

// Receives a response body piece by piece, in order. An error stops the transfer and
// becomes the result of http_request.
using BodySink = std::function<Result<void>(std::string_view chunk)>;

// Lets another thread end requests in flight (an agent that stops while its long polls
// wait): after cancel(), every request given this token, in flight or later, fails at
// once with kUnavailable "cancelled". Thread-safe; share one among many requests.
class CancelToken {
 public:
  void cancel();
  bool cancelled() const;

  // For http_request: while attached, cancel() shuts the connected socket down.
  void attach(int fd);
  void detach(int fd);

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  std::vector<int> fds_;
};

struct ClientResponse;

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";
  std::vector<Header> headers;
  std::string body;
  std::string content_type;  // sets Content-Type when non-empty
  // Deadline for connecting, sending and receiving the headers; with a body_sink,
  // also the longest wait for each further piece of the body (so a large download
  // that keeps moving is never cut off).
  std::chrono::milliseconds timeout{10000};
  bool tls = false;     // HTTPS (also implied by an "https://" address)
  std::string ca_file;  // PEM file of CAs trusted besides the system's (tests)
  // PEM CAs, in memory. When set, the system store is not loaded: only these (and
  // ca_file, if also set) are trusted. The cluster CA, pinned. Either way the server's
  // certificate must also name the host or IP address connected to (a SAN).
  std::string ca_pem;
  // A client certificate (PEM, leaf first, then any intermediates) and its key, for a
  // server that asks for one (mTLS): the server learns who is calling from its CN.
  std::string client_cert_pem;
  std::string client_key_pem;
  // When set, a 2xx response's body goes here instead of into ClientResponse::body.
  // Other statuses' bodies are still collected in memory (error documents are small).
  BodySink body_sink;
  // When set, called with the status and headers (no body yet) as soon as they have
  // arrived, before any of the body: a proxy starts its own answer then. An error
  // ends the request with it.
  std::function<Result<void>(const ClientResponse& head)> on_head;
  size_t max_body_bytes = 256ull * 1024 * 1024;  // in-memory body limit: kTooLarge
  std::shared_ptr<CancelToken> cancel;           // optional
};

struct ClientResponse {
  int status = 0;
  std::vector<Header> headers;
  std::string body;
  const std::string* header(std::string_view name) const;
};

// A request with an optional JSON body (Content-Type set only when there is one).
ClientRequest json_request(std::string method, std::string target, std::string body,
                           std::chrono::milliseconds timeout);

// address: "host:port", "http://host:port" or "https://host:port". kUnavailable when
// the server cannot be reached (or its certificate is not trusted), kTimeout when it
// does not answer in time, kTooLarge when an in-memory body passes max_body_bytes.
Result<ClientResponse> http_request(const std::string& address, const ClientRequest& request);

// For the join flow's pin check ONLY. Connects to address ("host:port" or
// "https://host:port") over TLS WITHOUT VERIFYING ANYTHING, takes the certificates the
// server presents, and hangs up: no HTTP request, no byte of application data is sent,
// so there is nothing a man in the middle could learn. Returns them as PEM, the server's
// own first, as sent (for the CA to be among them, the server puts it last in
// TlsServerConfig::cert_pem).
// Nothing here is trusted: the caller must compare what it got with a pin it already
// holds (the sha256 of the CA in its join token), and then talk over a connection
// verified against that CA (ClientRequest::ca_pem). kUnavailable / kTimeout as for
// http_request.
Result<std::vector<std::string>> fetch_peer_chain_pem(
    const std::string& address, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Strips "http://" or "https://" and a trailing "/": "http://127.0.0.1:4400/" ->
// "127.0.0.1:4400".
std::string normalize_address(std::string_view address);

}  // namespace mill::net
