// The server around the connections: sets up TLS, binds and listens, accepts onto a
// strand per connection, and stops gracefully (in-flight requests finish, idle
// connections close).

#include "net/http_server.h"

#include <openssl/ssl.h>

#include <exception>

#include "net/http_connection.h"

namespace mill::net {

Result<void> configure_tls(asio::ssl::context& ctx, const TlsServerConfig& config) {
  auto invalid = [](std::string what, const beast::error_code& ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "TLS: " + what + (ec ? ": " + ec.message() : std::string()));
  };
  if (config.cert_pem.empty() || config.key_pem.empty()) {
    return invalid("a server certificate and its key are both needed", {});
  }
  if (config.require_client_cert && config.client_ca_pem.empty()) {
    return invalid("require_client_cert needs client_ca_pem, the CA to verify them with", {});
  }
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  beast::error_code ec;
  ctx.use_certificate_chain(asio::buffer(config.cert_pem), ec);
  if (ec) return invalid("bad server certificate (PEM)", ec);
  ctx.use_private_key(asio::buffer(config.key_pem), asio::ssl::context::pem, ec);
  if (ec) return invalid("bad server key (PEM), or it does not match the certificate", ec);
  if (SSL_CTX_check_private_key(native) != 1) {
    return invalid("the server key does not match the certificate", {});
  }
  // Resumed sessions keep their verified client certificate; OpenSSL refuses to resume
  // a verified session without a context naming whose sessions they are.
  static constexpr unsigned char kSessionContext[] = "mill-http";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
  if (config.client_ca_pem.empty()) {
    ctx.set_verify_mode(asio::ssl::verify_none);
    return {};
  }
  // The context starts with an empty trust store (no system CAs): only these verify.
  ctx.add_certificate_authority(asio::buffer(config.client_ca_pem), ec);
  if (ec) return invalid("bad client CA (PEM)", ec);
  auto mode = asio::ssl::verify_peer;
  if (config.require_client_cert) mode |= asio::ssl::verify_fail_if_no_peer_cert;
  ctx.set_verify_mode(mode);
  return {};
}

void HttpServer::State::accept() {
  acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping.load()) return;
    if (!ec) {
      // Responses are small and latency-bound: never hold a segment back for Nagle.
      beast::error_code opt_ec;
      socket.set_option(tcp::no_delay(true), opt_ec);
      auto connection = std::make_shared<HttpConnection>(std::move(socket), *this);
      {
        std::lock_guard lock(connections_mutex);
        // Forget connections that have ended, so the set stays small.
        for (auto it = connections.begin(); it != connections.end();) {
          it = it->expired() ? connections.erase(it) : std::next(it);
        }
        connections.insert(connection);
      }
      connection->start();
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
  if (options.tls) {
    try {
      state->tls.emplace(asio::ssl::context::tls_server);
    } catch (const std::exception& e) {
      return make_error(ErrorCode::kInternal, std::string("TLS context: ") + e.what());
    }
    MILL_TRY(configure_tls(*state->tls, *options.tls));
  }
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
    std::vector<std::shared_ptr<HttpConnection>> live;
    {
      std::lock_guard lock(s.connections_mutex);
      for (auto& w : s.connections) {
        if (auto p = w.lock()) live.push_back(std::move(p));
      }
    }
    for (auto& connection : live) connection->shutdown();
    live.clear();
    // Wait for connections to finish their in-flight responses, then stop the loop.
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
      bool any = false;
      {
        std::lock_guard lock(s.connections_mutex);
        for (auto& w : s.connections) {
          auto connection = w.lock();
          any = any || (connection && !connection->closed());
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
    std::lock_guard lock(s.connections_mutex);
    for (auto& w : s.connections) {
      if (auto connection = w.lock()) connection->abort();
    }
  });
}

}  // namespace mill::net
