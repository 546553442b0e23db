// Answers a handler gives later (HttpResponse::async): the ResponseWriter it gets, and
// the connection's side of a long poll (one whole response, then keep-alive as usual)
// or a stream (a chunked body written as the producer queues it, then close).

#include <cstdio>

#include "net/http_connection.h"

namespace mill::net {

// The ResponseWriter a handler's async callback gets. Every call hops onto the
// connection's strand, so producers on any thread never touch the socket.
class AsyncWriter final : public ResponseWriter {
 public:
  explicit AsyncWriter(std::shared_ptr<HttpConnection> connection)
      : connection_(std::move(connection)) {}

  void respond(HttpResponse response) override {
    if (done_.exchange(true)) return;
    post([response = std::move(response)](HttpConnection& c) mutable {
      c.finish_async(std::move(response));
    });
  }
  void begin_stream(int status, std::string content_type, std::vector<Header> headers) override {
    if (done_.load()) return;
    post([status, ct = std::move(content_type), h = std::move(headers)](HttpConnection& c) {
      c.start_stream(status, ct, h);
    });
  }
  bool write(std::string chunk) override {
    if (gone_.load() || done_.load()) return false;
    post(
        [chunk = std::move(chunk)](HttpConnection& c) mutable { c.queue_chunk(std::move(chunk)); });
    return true;
  }
  void close() override {
    if (done_.exchange(true)) return;
    post([](HttpConnection& c) { c.end_stream(); });
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

  // From the connection's strand.
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
    asio::post(connection_->executor(),
               [c = connection_, f = std::forward<F>(f)]() mutable { f(*c); });
  }

  std::shared_ptr<HttpConnection> connection_;
  std::atomic<bool> gone_{false};
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::function<void()> on_gone_;
};

void HttpConnection::begin_async(std::function<void(std::shared_ptr<ResponseWriter>)> start,
                                 bool keep_alive, std::string method, std::string path,
                                 std::chrono::steady_clock::time_point started) {
  if (server_.stopping.load()) {
    // Accepted just as the server began stopping (after stop() looked at the live
    // connections): nothing would ever end this answer, so end the connection now.
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
  stream_.tcp_layer().expires_never();
  auto writer = std::make_shared<AsyncWriter>(shared_from_this());
  writer_ = writer;
  start(std::move(writer));
}

void HttpConnection::finish_async(HttpResponse response) {
  if (!async_ || stream_status_ != 0) return;
  bool keep_alive = async_keep_alive_ && !server_.stopping.load();
  send(std::move(response), keep_alive, async_method_, async_path_, async_started_);
}

void HttpConnection::start_stream(int status, const std::string& content_type,
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

void HttpConnection::queue_chunk(std::string chunk) {
  if (stream_status_ == 0 || stream_ending_ || chunk.empty()) return;
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  out_.push_back(size + std::move(chunk) + "\r\n");
  flush();
}

void HttpConnection::end_stream() {
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

void HttpConnection::flush() {
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
void HttpConnection::watch_client() {
  stream_.async_read_some(asio::buffer(drain_buffer_),
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (!ec && !self->stream_done_) return self->watch_client();
                            self->client_left();
                          });
}

void HttpConnection::client_left() {
  if (auto writer = writer_.lock()) writer->mark_gone();
}

}  // namespace mill::net
