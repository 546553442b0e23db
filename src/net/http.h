#pragma once

// Plain HTTP request/response values shared by the server, the client and every
// handler. No Beast or Asio here: only net/*.cc include those, so the rest of Mill
// compiles fast.

#include <functional>
#include <memory>
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
  // Over TLS with client certificates (TlsServerConfig::client_ca_pem): the subject CN
  // of the certificate the client presented, verified against the configured CA. ""
  // when there is none (plain HTTP, or a client that sent no certificate where one is
  // optional): then the connection proves no identity.
  std::string peer_identity;

  // First header with this name (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
  // Value of a query parameter (percent-decoded), or "" when absent.
  std::string query_param(std::string_view key) const;
  bool has_query_param(std::string_view key) const;
};

struct HttpResponse;

// How a handler answers later, from any thread: a long poll completes when the state
// it waits for changes; a log follower streams lines as they come. Every method is
// thread-safe and cheap (it queues work on the connection's strand). Use either
// respond() once, or begin_stream(), any number of write()s, then close().
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // A whole response. The connection may then serve the client's next request.
  virtual void respond(HttpResponse response) = 0;
  // Sends the status line and headers of a chunked body that write() extends. The
  // connection closes after close(), so a stream never holds a keep-alive slot.
  virtual void begin_stream(int status, std::string content_type,
                            std::vector<Header> headers = {}) = 0;
  // False once the client has gone (or the server is stopping): stop producing.
  virtual bool write(std::string chunk) = 0;
  virtual void close() = 0;
  virtual bool client_gone() const = 0;
  // Called once, on an I/O thread, when the client disconnects or the server stops
  // before close(); not called after close(). Set it before begin_stream().
  virtual void on_client_gone(std::function<void()> callback) = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<Header> headers;
  // When set, the server ignores the fields above and calls this once, on the I/O
  // thread, right after the handler returns; the answer then comes through the writer.
  // It must not block: hand the writer to whatever will produce the answer.
  std::function<void(std::shared_ptr<ResponseWriter>)> async;
};

// "host:port" split; host may be empty (":4400") or bracketed IPv6 ("[::1]:80").
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
bool parse_host_port(std::string_view text, HostPort& out);

bool iequals(std::string_view a, std::string_view b);
std::string percent_decode(std::string_view in);
// Percent-encodes everything but RFC 3986 unreserved characters (a query value, a
// path segment).
std::string percent_encode(std::string_view in);
std::string_view reason_phrase(int status);

}  // namespace mill::net
