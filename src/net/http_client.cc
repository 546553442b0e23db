#include "net/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace mill::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

const std::string* ClientResponse::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) return &h.value;
  }
  return nullptr;
}

std::string normalize_address(std::string_view address) {
  if (address.starts_with("http://")) address.remove_prefix(7);
  while (address.ends_with("/")) address.remove_suffix(1);
  return std::string(address);
}

Result<ClientResponse> http_request(const std::string& address, const ClientRequest& request) {
  std::string addr = normalize_address(address);
  HostPort hp;
  if (!parse_host_port(addr, hp) || hp.host.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "address '" + address + "' is not host:port");
  }
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(hp.host, std::to_string(hp.port), ec);
  if (ec)
    return make_error(ErrorCode::kUnavailable, "cannot resolve " + hp.host + ": " + ec.message());

  // Run each step asynchronously with the stream's deadline, so a server that
  // accepts but never answers cannot hang the caller.
  stream.expires_after(request.timeout);
  ClientResponse out;
  http::request<http::string_body> req{http::string_to_verb(request.method), request.target, 11};
  req.set(http::field::host, addr);
  req.set(http::field::user_agent, "mill");
  for (const auto& h : request.headers) req.set(h.name, h.value);
  if (!request.content_type.empty()) req.set(http::field::content_type, request.content_type);
  req.body() = request.body;
  if (req.method() == http::verb::unknown) req.method_string(request.method);
  req.prepare_payload();

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256ull * 1024 * 1024);
  beast::error_code result;
  stream.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
    if (e) {
      result = e;
      return;
    }
    http::async_write(stream, req, [&](beast::error_code e2, size_t) {
      if (e2) {
        result = e2;
        return;
      }
      http::async_read(stream, buffer, parser, [&](beast::error_code e3, size_t) { result = e3; });
    });
  });
  io.run();
  if (result == beast::error::timeout) {
    return make_error(ErrorCode::kTimeout, "no answer from " + addr + " in time");
  }
  if (result) {
    return make_error(ErrorCode::kUnavailable, "cannot reach " + addr + ": " + result.message());
  }
  auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    out.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  out.body = std::move(res.body());
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return out;
}

}  // namespace mill::net
