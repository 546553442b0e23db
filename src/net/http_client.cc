#include "net/http_client.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <exception>

namespace mill::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

const std::string* ClientResponse::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) return &h.value;
  }
  return nullptr;
}

std::string normalize_address(std::string_view address) {
  if (address.starts_with("http://")) address.remove_prefix(7);
  if (address.starts_with("https://")) address.remove_prefix(8);
  while (address.ends_with("/")) address.remove_suffix(1);
  return std::string(address);
}

namespace {

constexpr size_t kChunkBytes = 64 * 1024;

// Runs one asynchronous operation to completion on `io` (the stream's deadline, set
// by the caller, bounds it) and returns its error code.
template <class Start>
beast::error_code run(asio::io_context& io, Start&& start) {
  beast::error_code out;
  start([&out](beast::error_code ec, auto&&...) { out = ec; });
  io.restart();
  io.run();
  return out;
}

Unexpected cancelled(const std::string& addr) {
  return make_error(ErrorCode::kUnavailable, "request to " + addr + " cancelled");
}

// Keeps a connected socket attached to the request's cancel token; detached before the
// socket closes (declared after the stream), so a cancel never reaches a reused fd.
class Attached {
 public:
  Attached(const std::shared_ptr<CancelToken>& token, int fd) : token_(token.get()), fd_(fd) {
    if (token_) token_->attach(fd_);
  }
  ~Attached() {
    if (token_) token_->detach(fd_);
  }
  Attached(const Attached&) = delete;
  Attached& operator=(const Attached&) = delete;

 private:
  CancelToken* token_;
  int fd_;
};

Unexpected io_error(const beast::error_code& ec, const std::string& addr) {
  if (ec == beast::error::timeout) {
    return make_error(ErrorCode::kTimeout, "no answer from " + addr + " in time");
  }
  return make_error(ErrorCode::kUnavailable, "cannot reach " + addr + ": " + ec.message());
}

// Sends the request on an open stream and reads the answer: headers first, then the
// body in pieces, to the sink (2xx with a sink) or into memory.
template <class Stream>
Result<ClientResponse> exchange(asio::io_context& io, Stream& stream, beast::tcp_stream& tcp,
                                http::request<http::string_body>& req, const ClientRequest& request,
                                const std::string& addr) {
  if (auto ec = run(io, [&](auto h) { http::async_write(stream, req, std::move(h)); })) {
    return io_error(ec, addr);
  }
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // limited below, where we know where the body goes
  if (req.method() == http::verb::head) parser.skip(true);
  if (auto ec =
          run(io, [&](auto h) { http::async_read_header(stream, buffer, parser, std::move(h)); })) {
    return io_error(ec, addr);
  }
  ClientResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    out.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  if (request.on_head) MILL_TRY(request.on_head(out));
  const bool to_sink = request.body_sink && out.status / 100 == 2;
  std::vector<char> chunk(kChunkBytes);
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    if (to_sink) tcp.expires_after(request.timeout);
    // read_some: hand over what has arrived (an SSE line must not wait for 64 KiB more).
    auto ec = run(io, [&](auto h) { http::async_read_some(stream, buffer, parser, std::move(h)); });
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return io_error(ec, addr);
    size_t n = chunk.size() - parser.get().body().size;
    if (n == 0) continue;
    if (to_sink) {
      MILL_TRY(request.body_sink(std::string_view(chunk.data(), n)));
    } else {
      if (out.body.size() + n > request.max_body_bytes) {
        return make_error(ErrorCode::kTooLarge, "response from " + addr + " is larger than " +
                                                    std::to_string(request.max_body_bytes) +
                                                    " bytes");
      }
      out.body.append(chunk.data(), n);
    }
  }
  return out;
}

bool is_ip_literal(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Where a call goes: the address parsed (the scheme's port when it has none) and
// resolved.
struct Target {
  std::string addr;  // normalized, for messages
  HostPort hp;
  tcp::resolver::results_type endpoints;
};

Result<Target> resolve_target(asio::io_context& io, const std::string& address, bool tls) {
  Target t;
  t.addr = normalize_address(address);
  if (!parse_host_port(t.addr, t.hp)) {
    // No port: the scheme's default.
    if (!parse_host_port(t.addr + (tls ? ":443" : ":80"), t.hp)) t.hp.host.clear();
  }
  if (t.hp.host.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "address '" + address + "' is not host:port");
  }
  beast::error_code ec;
  tcp::resolver resolver(io);
  t.endpoints = resolver.resolve(t.hp.host, std::to_string(t.hp.port), ec);
  if (ec) {
    return make_error(ErrorCode::kUnavailable, "cannot resolve " + t.hp.host + ": " + ec.message());
  }
  return t;
}

// The trust and the identity of an HTTPS call: which CAs verify the server (the
// system's plus ca_file, or only ca_pem) and the client certificate, if any.
Result<void> configure_client_tls(ssl::context& ctx, const ClientRequest& request) {
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  if (request.ca_pem.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.add_certificate_authority(asio::buffer(request.ca_pem), ec);
    if (ec) return make_error(ErrorCode::kInvalidArgument, "bad CA PEM (ca_pem): " + ec.message());
  }
  if (!request.ca_file.empty()) {
    ctx.load_verify_file(request.ca_file, ec);
    if (ec) {
      return make_error(ErrorCode::kIo,
                        "cannot load CA file " + request.ca_file + ": " + ec.message());
    }
  }
  if (!request.client_cert_pem.empty() || !request.client_key_pem.empty()) {
    ctx.use_certificate_chain(asio::buffer(request.client_cert_pem), ec);
    if (ec) {
      return make_error(ErrorCode::kInvalidArgument, "bad client certificate PEM: " + ec.message());
    }
    ctx.use_private_key(asio::buffer(request.client_key_pem), ssl::context::pem, ec);
    if (ec || SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
      return make_error(ErrorCode::kInvalidArgument,
                        "bad client key PEM, or it does not match the client certificate");
    }
  }
  ctx.set_verify_mode(ssl::verify_peer);
  return {};
}

// The name the server's certificate must carry: a DNS name (SNI sends it too), or an
// IP address, matched against the certificate's IP SANs (OpenSSL's own check, so a
// mismatch fails the handshake with a verify result that says so).
void expect_peer(SSL* ssl, const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (is_ip_literal(host)) {
    // SNI carries names only, never IP literals (RFC 6066).
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    return;
  }
  SSL_set_tlsext_host_name(ssl, host.c_str());
  X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
}

Unexpected handshake_error(SSL* ssl, const beast::error_code& ec, const std::string& addr) {
  if (ec == beast::error::timeout) return io_error(ec, addr);
  std::string message = "TLS handshake with " + addr + " failed: " + ec.message();
  // What was wrong with the server's certificate, when that was the cause.
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) message += std::string(": ") + X509_verify_cert_error_string(verify);
  return make_error(ErrorCode::kUnavailable, message);
}

Result<ClientResponse> request_impl(const std::string& address, const ClientRequest& request) {
  const bool tls = request.tls || address.starts_with("https://");
  asio::io_context io;
  auto target = MILL_TRY(resolve_target(io, address, tls));
  const std::string& addr = target.addr;
  const HostPort& hp = target.hp;
  const auto& endpoints = target.endpoints;
  const uint16_t default_port = tls ? 443 : 80;
  std::string host_header = hp.host.find(':') != std::string::npos ? "[" + hp.host + "]" : hp.host;
  if (hp.port != default_port) host_header += ":" + std::to_string(hp.port);
  beast::error_code ec;

  http::request<http::string_body> req{http::string_to_verb(request.method), request.target, 11};
  if (req.method() == http::verb::unknown) req.method_string(request.method);
  req.set(http::field::host, host_header);
  req.set(http::field::user_agent, "mill");
  for (const auto& h : request.headers) req.set(h.name, h.value);
  if (!request.content_type.empty()) req.set(http::field::content_type, request.content_type);
  req.body() = request.body;
  req.prepare_payload();

  // Each step runs asynchronously under the stream's deadline, so a server that
  // accepts but never answers cannot hang the caller.
  if (!tls) {
    beast::tcp_stream stream(io);
    stream.expires_after(request.timeout);
    if (auto e = run(io, [&](auto h) { stream.async_connect(endpoints, std::move(h)); })) {
      return io_error(e, addr);
    }
    Attached attached(request.cancel, stream.socket().native_handle());
    if (request.cancel && request.cancel->cancelled()) return cancelled(addr);
    auto out = exchange(io, stream, stream, req, request, addr);
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    if (!out && request.cancel && request.cancel->cancelled()) return cancelled(addr);
    return out;
  }

  ssl::context ctx(ssl::context::tls_client);
  MILL_TRY(configure_client_tls(ctx, request));
  ssl::stream<beast::tcp_stream> stream(io, ctx);
  expect_peer(stream.native_handle(), hp.host);
  auto& tcp_layer = beast::get_lowest_layer(stream);
  tcp_layer.expires_after(request.timeout);
  if (auto e = run(io, [&](auto h) { tcp_layer.async_connect(endpoints, std::move(h)); })) {
    return io_error(e, addr);
  }
  Attached attached(request.cancel, tcp_layer.socket().native_handle());
  if (request.cancel && request.cancel->cancelled()) return cancelled(addr);
  if (auto e = run(
          io, [&](auto h) { stream.async_handshake(ssl::stream_base::client, std::move(h)); })) {
    return handshake_error(stream.native_handle(), e, addr);
  }
  auto out = exchange(io, stream, tcp_layer, req, request, addr);
  // No TLS close_notify: the response is complete (or failed) either way, and a peer
  // that never answers the shutdown must not hold us.
  tcp_layer.socket().shutdown(tcp::socket::shutdown_both, ec);
  if (!out && request.cancel && request.cancel->cancelled()) return cancelled(addr);
  return out;
}

Result<std::vector<std::string>> fetch_chain_impl(const std::string& address,
                                                  std::chrono::milliseconds timeout) {
  asio::io_context io;
  auto target = MILL_TRY(resolve_target(io, address, true));
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  // Deliberately unverified (see the header): the caller checks the result against its
  // pin, and nothing but the handshake crosses this connection.
  ctx.set_verify_mode(ssl::verify_none);
  ssl::stream<beast::tcp_stream> stream(io, ctx);
  if (!is_ip_literal(target.hp.host)) {
    SSL_set_tlsext_host_name(stream.native_handle(), target.hp.host.c_str());
  }
  auto& tcp_layer = beast::get_lowest_layer(stream);
  tcp_layer.expires_after(timeout);
  if (auto e = run(io, [&](auto h) { tcp_layer.async_connect(target.endpoints, std::move(h)); })) {
    return io_error(e, target.addr);
  }
  if (auto e = run(
          io, [&](auto h) { stream.async_handshake(ssl::stream_base::client, std::move(h)); })) {
    if (e == beast::error::timeout) return io_error(e, target.addr);
    return make_error(ErrorCode::kUnavailable,
                      "TLS handshake with " + target.addr + " failed: " + e.message());
  }
  std::vector<std::string> out;
  // On the client side the chain includes the server's own certificate, first.
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(stream.native_handle());
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (!bio) return make_error(ErrorCode::kInternal, "out of memory");
    std::string pem;
    if (PEM_write_bio_X509(bio, sk_X509_value(chain, i)) == 1) {
      char* data = nullptr;
      long n = BIO_get_mem_data(bio, &data);
      if (n > 0) pem.assign(data, static_cast<size_t>(n));
    }
    BIO_free(bio);
    if (pem.empty()) return make_error(ErrorCode::kInternal, "cannot encode a certificate as PEM");
    out.push_back(std::move(pem));
  }
  beast::error_code ec;
  tcp_layer.socket().shutdown(tcp::socket::shutdown_both, ec);
  if (out.empty()) {
    return make_error(ErrorCode::kUnavailable, target.addr + " presented no certificate");
  }
  return out;
}

}  // namespace

void CancelToken::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  // shutdown(2) on a socket another thread waits on is safe: its read ends at once.
  for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
}

bool CancelToken::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

void CancelToken::attach(int fd) {
  std::lock_guard lock(mu_);
  fds_.push_back(fd);
  if (cancelled_) ::shutdown(fd, SHUT_RDWR);
}

void CancelToken::detach(int fd) {
  std::lock_guard lock(mu_);
  std::erase(fds_, fd);
}

Result<std::vector<std::string>> fetch_peer_chain_pem(const std::string& address,
                                                      std::chrono::milliseconds timeout) {
  try {
    return fetch_chain_impl(address, timeout);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, std::string("http client: ") + e.what());
  }
}

Result<ClientResponse> http_request(const std::string& address, const ClientRequest& request) {
  if (request.cancel && request.cancel->cancelled()) return cancelled(normalize_address(address));
  try {
    return request_impl(address, request);
  } catch (const std::exception& e) {
    // Asio and OpenSSL setup failures (out of memory, broken SSL library) throw.
    return make_error(ErrorCode::kInternal, std::string("http client: ") + e.what());
  }
}

ClientRequest json_request(std::string method, std::string target, std::string body,
                           std::chrono::milliseconds timeout) {
  ClientRequest req;
  req.method = std::move(method);
  req.target = std::move(target);
  req.body = std::move(body);
  req.timeout = timeout;
  if (!req.body.empty()) req.content_type = "application/json";
  return req;
}

}  // namespace mill::net
