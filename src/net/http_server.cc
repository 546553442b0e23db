#include "net/http_server.h"

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace mill::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class Session;
class AsyncWriter;

struct HttpServer::State {
  HttpServerOptions options;
  Handler handler;
  AccessLogger logger;
  asio::io_context io;
  // Keeps run() going while the only live work is an answer a handler will give later
  // (a long poll has no pending socket operation): without it the I/O threads could
  // return while stop() still has sessions to close.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  std::mutex sessions_mutex;
  std::set<std::weak_ptr<Session>, std::owner_less<std::weak_ptr<Session>>> sessions;
  std::once_flag stop_once;

  void accept();
};

namespace {

std::string endpoint_text(const tcp::endpoint& ep) {
  auto addr = ep.address();
  std::string host = addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string();
  return host + ":" + std::to_string(ep.port());
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

// One connection. Reads a request, runs the handler, writes the response, repeats
// while keep-alive holds. All its work runs on its own strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::State& server)
      : stream_(std::move(socket)), server_(server) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = endpoint_text(ep);
  }

  auto executor() { return stream_.get_executor(); }
  // Closed sessions may live on while a producer still holds their writer; stop()
  // does not wait for those.
  bool closed() const { return closed_.load(); }

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

  // Called at stop once no I/O thread runs: closes the socket, whatever state it is in.
  void abort() {
    beast::error_code ec;
    stream_.socket().close(ec);
  }

  // Called at stop: an idle connection closes now; a busy one after its response. A
  // request whose first bytes have arrived counts as busy: it is in flight, and its
  // sender is owed an answer (the read timeout and the stop grace still bound it).
  void shutdown() {
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

 private:
  void read() {
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

  void on_read(beast::error_code ec) {
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

 public:
  // The answer comes later through an AsyncWriter; these run on the strand.
  void begin_async(std::function<void(std::shared_ptr<ResponseWriter>)> start, bool keep_alive,
                   std::string method, std::string path,
                   std::chrono::steady_clock::time_point started);
  void finish_async(HttpResponse response);
  void start_stream(int status, const std::string& content_type,
                    const std::vector<Header>& headers);
  void queue_chunk(std::string chunk);
  void end_stream();
  void client_left();

 private:
  void flush();
  void watch_client();

  // A request we could not parse: answer, then close (the stream's framing is lost).
  void reject(int status, std::string_view message) {
    busy_ = true;
    linger_ = true;
    HttpResponse response;
    response.status = status;
    response.body = json_error(message);
    send(std::move(response), false, "-", "-", std::chrono::steady_clock::now());
  }

  void send(HttpResponse response, bool keep_alive, std::string method, std::string path,
            std::chrono::steady_clock::time_point started) {
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
                          self->server_.logger({method, path, static_cast<int>(res->result_int()),
                                                us, self->remote_});
                        }
                        if (!ec && self->linger_) return self->linger();
                        if (ec || !keep_alive || self->server_.stopping.load())
                          return self->close();
                        self->read();
                      });
  }

  // After rejecting a request whose body is still arriving, closing at once would
  // make the kernel answer the client's next bytes with a reset, which can destroy our
  // response before the client reads it. So, like nginx's lingering close: stop
  // sending, then read and discard for a bounded time and size, then close.
  void linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(drain_buffer_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrainBytes) return self->close();
                              self->drain();
                            });
  }

  void close() {
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  HttpServer::State& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string remote_;
  bool first_ = true;
  bool busy_ = false;
  bool linger_ = false;
  std::atomic<bool> closed_{false};
  // Async answers (long polls, streams).
  friend class AsyncWriter;
  bool async_ = false;
  bool async_keep_alive_ = false;
  std::string async_method_;
  std::string async_path_;
  std::chrono::steady_clock::time_point async_started_;
  std::weak_ptr<AsyncWriter> writer_;
  int stream_status_ = 0;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool stream_ending_ = false;
  bool stream_done_ = false;
  static constexpr size_t kMaxDrainBytes = 16 * 1024 * 1024;
  size_t drained_ = 0;
  std::array<char, 16384> drain_buffer_{};
};

// The ResponseWriter a handler's async callback gets. Every call hops onto the
// session's strand, so producers on any thread never touch the socket.
class AsyncWriter final : public ResponseWriter {
 public:
  explicit AsyncWriter(std::shared_ptr<Session> session) : session_(std::move(session)) {}

  void respond(HttpResponse response) override {
    if (done_.exchange(true)) return;
    post([response = std::move(response)](Session& s) mutable {
      s.finish_async(std::move(response));
    });
  }
  void begin_stream(int status, std::string content_type, std::vector<Header> headers) override {
    if (done_.load()) return;
    post([status, ct = std::move(content_type), h = std::move(headers)](Session& s) {
      s.start_stream(status, ct, h);
    });
  }
  bool write(std::string chunk) override {
    if (gone_.load() || done_.load()) return false;
    post([chunk = std::move(chunk)](Session& s) mutable { s.queue_chunk(std::move(chunk)); });
    return true;
  }
  void close() override {
    if (done_.exchange(true)) return;
    post([](Session& s) { s.end_stream(); });
  }
  bool client_gone() const override { return gone_.load(); }
  void on_client_gone(std::function<void()> callback) override {
    std::lock_guard lock(mutex_);
    if (gone_.load()) {
      if (callback && !done_.load()) callback();
      return;
    }
    on_gone_ = std::move(callback);
  }

  // From the session's strand.
  void mark_gone() {
    std::function<void()> callback;
    {
      std::lock_guard lock(mutex_);
      if (gone_.exchange(true)) return;
      callback = std::move(on_gone_);
    }
    if (callback && !done_.load()) callback();
  }

 private:
  template <typename F>
  void post(F&& f) {
    asio::post(session_->executor(), [s = session_, f = std::forward<F>(f)]() mutable { f(*s); });
  }

  std::shared_ptr<Session> session_;
  std::atomic<bool> gone_{false};
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::function<void()> on_gone_;
};

void Session::begin_async(std::function<void(std::shared_ptr<ResponseWriter>)> start,
                          bool keep_alive, std::string method, std::string path,
                          std::chrono::steady_clock::time_point started) {
  if (server_.stopping.load()) {
    // Accepted just as the server began stopping (after stop() looked at the live
    // sessions): nothing would ever end this answer, so end the connection now.
    return close();
  }
  async_ = true;
  async_keep_alive_ = keep_alive;
  async_method_ = std::move(method);
  async_path_ = std::move(path);
  async_started_ = started;
  stream_status_ = 0;
  stream_ending_ = stream_done_ = false;
  // The producer decides how long this takes (a long poll has its own bound).
  stream_.expires_never();
  auto writer = std::make_shared<AsyncWriter>(shared_from_this());
  writer_ = writer;
  start(std::move(writer));
}

void Session::finish_async(HttpResponse response) {
  if (!async_ || stream_status_ != 0) return;
  bool keep_alive = async_keep_alive_ && !server_.stopping.load();
  send(std::move(response), keep_alive, async_method_, async_path_, async_started_);
}

void Session::start_stream(int status, const std::string& content_type,
                           const std::vector<Header>& headers) {
  if (!async_ || stream_status_ != 0) return;
  stream_status_ = status;
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " +
                     std::string(reason_phrase(status)) +
                     "\r\nServer: mill\r\nContent-Type: " + content_type +
                     "\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                     "Connection: close\r\n";
  for (const auto& h : headers) head += h.name + ": " + h.value + "\r\n";
  head += "\r\n";
  out_.push_back(std::move(head));
  flush();
  watch_client();
}

void Session::queue_chunk(std::string chunk) {
  if (stream_status_ == 0 || stream_ending_ || chunk.empty()) return;
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  out_.push_back(size + std::move(chunk) + "\r\n");
  flush();
}

void Session::end_stream() {
  if (stream_status_ == 0) {
    // close() without begin_stream(): answer with an empty 204 rather than hang.
    HttpResponse empty;
    empty.status = 204;
    return finish_async(std::move(empty));
  }
  if (stream_ending_) return;
  stream_ending_ = true;
  out_.push_back("0\r\n\r\n");
  flush();
}

void Session::flush() {
  if (writing_ || stream_done_) return;
  if (out_.empty()) {
    if (!stream_ending_) return;
    // The whole stream is out: log it and close (streams never keep the connection).
    stream_done_ = true;
    if (server_.logger) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - async_started_);
      server_.logger({async_method_, async_path_, stream_status_, us, remote_});
    }
    return close();
  }
  // Coalesce whatever producers queued since the last write into one send.
  std::string batch;
  for (auto& piece : out_) batch += piece;
  out_.clear();
  writing_ = true;
  auto data = std::make_shared<std::string>(std::move(batch));
  asio::async_write(stream_, asio::buffer(*data),
                    [self = shared_from_this(), data](beast::error_code ec, size_t) {
                      self->writing_ = false;
                      if (ec) {
                        self->stream_done_ = true;
                        self->client_left();
                        return self->close();
                      }
                      self->flush();
                    });
}

// A stream's client sends nothing more; a read that completes means it closed (or
// misbehaves), and either way the producer should stop.
void Session::watch_client() {
  stream_.async_read_some(asio::buffer(drain_buffer_),
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (!ec && !self->stream_done_) return self->watch_client();
                            self->client_left();
                          });
}

void Session::client_left() {
  if (auto writer = writer_.lock()) writer->mark_gone();
}

void HttpServer::State::accept() {
  acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping.load()) return;
    if (!ec) {
      // Responses are small and latency-bound: never hold a segment back for Nagle.
      beast::error_code opt_ec;
      socket.set_option(tcp::no_delay(true), opt_ec);
      auto session = std::make_shared<Session>(std::move(socket), *this);
      {
        std::lock_guard lock(sessions_mutex);
        // Forget sessions that have ended, so the set stays small.
        for (auto it = sessions.begin(); it != sessions.end();) {
          it = it->expired() ? sessions.erase(it) : std::next(it);
        }
        sessions.insert(session);
      }
      session->start();
    }
    accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

HttpServer::~HttpServer() { stop(std::chrono::milliseconds(0)); }

Result<std::unique_ptr<HttpServer>> HttpServer::create(HttpServerOptions options, Handler handler,
                                                       AccessLogger logger) {
  HostPort hp;
  if (!parse_host_port(options.listen, hp)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "listen address '" + options.listen + "' is not host:port");
  }
  beast::error_code ec;
  auto address = asio::ip::make_address(hp.host.empty() ? "0.0.0.0" : hp.host, ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument, "listen address '" + hp.host + "' is not an IP");
  }
  auto state = std::make_unique<State>();
  state->options = std::move(options);
  state->handler = std::move(handler);
  state->logger = std::move(logger);
  tcp::endpoint endpoint(address, hp.port);
  auto& acc = state->acceptor;
  if (acc.open(endpoint.protocol(), ec); !ec) {
    acc.set_option(asio::socket_base::reuse_address(true), ec);
    acc.bind(endpoint, ec);
  }
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return make_error(ErrorCode::kIo,
                      "cannot listen on " + endpoint_text(endpoint) + ": " + ec.message());
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

std::string HttpServer::address() const {
  beast::error_code ec;
  return endpoint_text(state_->acceptor.local_endpoint(ec));
}

uint16_t HttpServer::port() const {
  beast::error_code ec;
  return state_->acceptor.local_endpoint(ec).port();
}

void HttpServer::start() {
  state_->work.emplace(state_->io.get_executor());
  state_->accept();
  int n = std::max(1, state_->options.threads);
  for (int i = 0; i < n; ++i) {
    state_->threads.emplace_back([s = state_.get()] { s->io.run(); });
  }
}

void HttpServer::stop(std::chrono::milliseconds grace) {
  std::call_once(state_->stop_once, [&] {
    State& s = *state_;
    s.stopping = true;
    asio::post(s.io, [&s] {
      beast::error_code ec;
      s.acceptor.close(ec);
    });
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(s.sessions_mutex);
      for (auto& w : s.sessions) {
        if (auto p = w.lock()) live.push_back(std::move(p));
      }
    }
    for (auto& session : live) session->shutdown();
    live.clear();
    // Wait for sessions to finish their in-flight responses, then stop the loop.
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
      bool any = false;
      {
        std::lock_guard lock(s.sessions_mutex);
        for (auto& w : s.sessions) {
          auto session = w.lock();
          any = any || (session && !session->closed());
        }
      }
      if (!any) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    s.work.reset();
    s.io.stop();
    for (auto& t : s.threads) {
      if (t.joinable()) t.join();
    }
    // io.stop() may have left the posted close above unrun. No I/O thread runs now, so
    // close here whatever is still open: a client that connects later, or sits in the
    // listen backlog, must be refused or cut, not left waiting for an answer.
    beast::error_code ec;
    s.acceptor.close(ec);
    std::lock_guard lock(s.sessions_mutex);
    for (auto& w : s.sessions) {
      if (auto session = w.lock()) session->abort();
    }
  });
}

}  // namespace mill::net
