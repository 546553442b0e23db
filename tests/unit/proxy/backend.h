#pragma once

// Real servers and clients on loopback for the proxy's tests (Beast, synchronous, one
// thread per connection): a backend whose handler sees the raw socket, and a client
// that keeps its connection.

#include <poll.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mill::proxy::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Serves each connection on its own thread with `handler`, which owns the socket's
// life for that connection (it returns when the connection should close).
class Backend {
 public:
  using Handler = std::function<void(tcp::socket&)>;
  explicit Backend(Handler handler) : handler_(std::move(handler)), acceptor_(io_) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { loop(); });
  }
  ~Backend() { stop(); }

  void stop() {
    if (stopped_.exchange(true)) return;
    boost::system::error_code ec;
    // Wake accept() with a connection of our own, then close everything.
    tcp::socket s(io_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
    acceptor_.close(ec);
    std::vector<std::thread> conns;
    {
      std::lock_guard lock(mutex_);
      for (auto* sock : live_) sock->shutdown(tcp::socket::shutdown_both, ec);
      conns.swap(conns_);
    }
    // Unlocked: a finishing connection takes the lock to leave live_.
    for (auto& t : conns) t.join();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return accepted_.load(); }

 private:
  void loop() {
    while (true) {
      auto sock = std::make_shared<tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*sock, ec);
      if (stopped_ || ec) return;
      accepted_++;
      std::lock_guard lock(mutex_);
      live_.push_back(sock.get());
      conns_.emplace_back([this, sock] {
        handler_(*sock);
        boost::system::error_code ignored;
        sock->shutdown(tcp::socket::shutdown_both, ignored);
        std::lock_guard lock(mutex_);
        std::erase(live_, sock.get());
      });
    }
  }

  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<tcp::socket*> live_;
  std::vector<std::thread> conns_;
};

// A handler that answers every request on the connection with `respond`.
inline Backend::Handler serve_http(
    std::function<http::response<http::string_body>(const http::request<http::string_body>&)>
        respond) {
  return [respond](tcp::socket& sock) {
    beast::flat_buffer buf;
    while (true) {
      http::request<http::string_body> req;
      boost::system::error_code ec;
      http::read(sock, buf, req, ec);
      if (ec) return;
      auto res = respond(req);
      res.version(11);
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(sock, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  };
}

// An HTTP/1.1 client on one kept connection.
class Client {
 public:
  explicit Client(uint16_t port) : sock_(io_) {
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  http::response<http::string_body> request(http::request<http::string_body> req) {
    req.version(11);
    req.prepare_payload();
    http::write(sock_, req);
    http::response_parser<http::string_body> p;
    p.body_limit(boost::none);
    if (req.method() == http::verb::head) p.skip(true);
    http::read(sock_, buf_, p);
    return p.release();
  }
  http::response<http::string_body> get(const std::string& host, const std::string& target) {
    http::request<http::string_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host);
    return request(std::move(req));
  }
  // Sends raw bytes; reads until the proxy closes the connection (or `limit` bytes, or
  // 30 s without a byte: a proxy that never closes fails the test instead of hanging it).
  std::string raw(const std::string& bytes, size_t limit = 1 << 20) {
    asio::write(sock_, asio::buffer(bytes));
    std::string out;
    char b[4096];
    boost::system::error_code ec;
    while (out.size() < limit) {
      pollfd p{sock_.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 30000) != 1) break;
      size_t n = sock_.read_some(asio::buffer(b), ec);
      if (ec) break;
      out.append(b, n);
    }
    return out;
  }
  tcp::socket& socket() { return sock_; }
  beast::flat_buffer& buffer() { return buf_; }

 private:
  asio::io_context io_;
  tcp::socket sock_;
  beast::flat_buffer buf_;
};

}  // namespace mill::proxy::test
