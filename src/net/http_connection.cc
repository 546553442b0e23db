// One connection's request/response cycle: the TLS handshake (when the server has
// TLS), then read a request within the header and body limits and the read or idle
// timeout, hand it to the handler, write the answer, and close (lingering after a
// rejected request) when keep-alive ends.

#include "net/http_connection.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace mill::net {

namespace {

// The subject CN of the client certificate the handshake verified, or "".
std::string verified_peer_cn(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return "";
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return "";
  X509_NAME* subject = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0) return "";
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
  if (n < 0) return "";
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  // A CN with a NUL in it names nothing we could match safely.
  return cn.find('\0') == std::string::npos ? cn : "";
}

std::string json_error(std::string_view message) {
  std::string out = "{\"error\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"}";
}

}  // namespace

std::string endpoint_text(const tcp::endpoint& ep) {
  auto addr = ep.address();
  std::string host = addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string();
  return host + ":" + std::to_string(ep.port());
}

namespace {

ServerStream make_stream(tcp::socket socket, HttpServer::State& server) {
  if (server.tls) return ServerStream(std::move(socket), *server.tls);
  return ServerStream(std::move(socket));
}

}  // namespace

HttpConnection::HttpConnection(tcp::socket socket, HttpServer::State& server)
    : stream_(make_stream(std::move(socket), server)), server_(server) {
  beast::error_code ec;
  auto ep = stream_.tcp_layer().socket().remote_endpoint(ec);
  if (!ec) remote_ = endpoint_text(ep);
}

void HttpConnection::start() {
  first_deadline_ = std::chrono::steady_clock::now() + server_.options.read_timeout;
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    if (self->stream_.tls()) return self->handshake();
    self->read();
  });
}

// The handshake shares the first request's deadline: a client that connects and says
// nothing (or too little) holds its slot for read_timeout at most.
void HttpConnection::handshake() {
  stream_.tcp_layer().expires_at(first_deadline_);
  auto on_handshake = [self = shared_from_this()](beast::error_code ec) {
    // No certificate where one is required, an untrusted one, not TLS, too slow.
    if (ec) return self->close();
    self->peer_identity_ = verified_peer_cn(self->stream_.tls()->native_handle());
    self->read();
  };
  stream_.tls()->async_handshake(asio::ssl::stream_base::server, std::move(on_handshake));
}

void HttpConnection::abort() {
  beast::error_code ec;
  stream_.tcp_layer().socket().close(ec);
}

void HttpConnection::shutdown() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    // A long poll or a stream has no natural end: cut it, and tell its producer.
    if (self->async_) {
      self->client_left();
      return self->close();
    }
    bool receiving = self->buffer_.size() > 0 || (self->parser_ && self->parser_->got_some());
    if (!self->busy_ && !receiving) self->close();
  });
}

void HttpConnection::read() {
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(server_.options.max_header_bytes));
  parser_->body_limit(server_.options.max_body_bytes);
  // A new connection must finish its TLS handshake and deliver its first request
  // within the read timeout; a kept-alive one may sit idle up to the idle timeout. Either way a
  // slow client is cut off after a bounded time.
  if (first_) {
    stream_.tcp_layer().expires_at(first_deadline_);
  } else {
    stream_.tcp_layer().expires_after(server_.options.idle_timeout);
  }
  first_ = false;
  http::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
}

void HttpConnection::on_read(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
    return close();
  }
  // A TLS client that closes without close_notify (most do, between requests), or a
  // TLS-level failure: nothing an HTTP answer could reach.
  if (ec.category() == asio::ssl::error::get_stream_category() ||
      ec.category() == asio::error::get_ssl_category()) {
    return close();
  }
  if (ec == http::error::header_limit) return reject(431, "request headers too large");
  if (ec == http::error::body_limit) return reject(413, "request body too large");
  if (ec) return reject(400, "malformed HTTP request");

  busy_ = true;
  auto started = std::chrono::steady_clock::now();
  auto& req = parser_->get();
  HttpRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  size_t q = request.target.find('?');
  request.path = request.target.substr(0, q);
  if (q != std::string::npos) request.query = request.target.substr(q + 1);
  for (const auto& field : req) {
    request.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  request.body = std::move(req.body());
  request.remote = remote_;
  request.peer_identity = peer_identity_;

  HttpResponse response = server_.handler(request);
  bool keep_alive = req.keep_alive() && !server_.stopping.load();
  if (response.async) {
    return begin_async(std::move(response.async), keep_alive, std::move(request.method),
                       std::move(request.path), started);
  }
  send(std::move(response), keep_alive, request.method, request.path, started);
}

// A request we could not parse: answer, then close (the stream's framing is lost).
void HttpConnection::reject(int status, std::string_view message) {
  busy_ = true;
  linger_ = true;
  HttpResponse response;
  response.status = status;
  response.body = json_error(message);
  send(std::move(response), false, "-", "-", std::chrono::steady_clock::now());
}

void HttpConnection::send(HttpResponse response, bool keep_alive, std::string method,
                          std::string path, std::chrono::steady_clock::time_point started) {
  async_ = false;
  auto res = std::make_shared<http::response<http::string_body>>();
  res->version(11);
  res->result(static_cast<unsigned>(response.status));
  res->set(http::field::server, "mill");
  res->set(http::field::content_type, response.content_type);
  for (auto& h : response.headers) res->set(h.name, h.value);
  res->body() = std::move(response.body);
  res->keep_alive(keep_alive);
  res->prepare_payload();
  stream_.tcp_layer().expires_after(server_.options.read_timeout);
  http::async_write(stream_, *res,
                    [self = shared_from_this(), res, keep_alive, method = std::move(method),
                     path = std::move(path), started](beast::error_code ec, size_t) {
                      self->busy_ = false;
                      if (self->server_.logger) {
                        auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - started);
                        self->server_.logger(
                            {method, path, static_cast<int>(res->result_int()), us, self->remote_});
                      }
                      if (!ec && self->linger_) return self->linger();
                      if (ec || !keep_alive || self->server_.stopping.load()) return self->close();
                      self->read();
                    });
}

// After rejecting a request whose body is still arriving, closing at once would make
// the kernel answer the client's next bytes with a reset, which can destroy our
// response before the client reads it. So, like nginx's lingering close: stop sending,
// then read and discard for a bounded time and size, then close. Over TLS the bytes are
// discarded as they come, undecrypted: the TLS session is over.
void HttpConnection::linger() {
  beast::error_code ec;
  stream_.tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.tcp_layer().expires_after(std::chrono::seconds(2));
  drain();
}

void HttpConnection::drain() {
  auto on_read = [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->drained_ += n;
    if (ec || self->drained_ > kMaxDrainBytes) return self->close();
    self->drain();
  };
  stream_.tcp_layer().async_read_some(asio::buffer(drain_buffer_), std::move(on_read));
}

// Over TLS, without close_notify: every response's end is in its HTTP framing
// (Content-Length or the last chunk), and waiting for the peer's close_notify would let
// it hold the connection.
void HttpConnection::close() {
  closed_ = true;
  beast::error_code ec;
  stream_.tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.tcp_layer().socket().close(ec);
}

}  // namespace mill::net
