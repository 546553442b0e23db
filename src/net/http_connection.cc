// One connection's request/response cycle: read a request within the header and body
// limits and the read or idle timeout, hand it to the handler, write the answer, and
// close (lingering after a rejected request) when keep-alive ends.

#include "net/http_connection.h"

namespace mill::net {

namespace {

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

HttpConnection::HttpConnection(tcp::socket socket, HttpServer::State& server)
    : stream_(std::move(socket)), server_(server) {
  beast::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  if (!ec) remote_ = endpoint_text(ep);
}

void HttpConnection::start() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
}

void HttpConnection::abort() {
  beast::error_code ec;
  stream_.socket().close(ec);
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
  // A new connection must deliver its first request within the read timeout; a
  // kept-alive one may sit idle up to the idle timeout. Either way a slow client is
  // cut off after a bounded time.
  stream_.expires_after(first_ ? server_.options.read_timeout : server_.options.idle_timeout);
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
  stream_.expires_after(server_.options.read_timeout);
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
// then read and discard for a bounded time and size, then close.
void HttpConnection::linger() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.expires_after(std::chrono::seconds(2));
  drain();
}

void HttpConnection::drain() {
  stream_.async_read_some(asio::buffer(drain_buffer_),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            self->drained_ += n;
                            if (ec || self->drained_ > kMaxDrainBytes) return self->close();
                            self->drain();
                          });
}

void HttpConnection::close() {
  closed_ = true;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.socket().close(ec);
}

}  // namespace mill::net
