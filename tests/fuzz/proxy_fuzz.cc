// Fuzzes what the ingress proxy does with a client's request head: Beast parses it,
// check_request() accepts or refuses it, an accepted one is routed and rewritten for
// the upstream. Never a crash, and the rewritten head keeps the proxy's promises: no
// hop-by-hop header left, X-Forwarded-For is the client's address only, one Host,
// never both Content-Length and Transfer-Encoding.

#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "proxy/route_table.h"
#include "proxy/rules.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const mill::proxy::RouteTable* table =
      new mill::proxy::RouteTable(std::vector<mill::proxy::RouteKey>{{"app.example.com", "/"},
                                                                     {"app.example.com", "/api"},
                                                                     {"*.example.com", "/"},
                                                                     {"*", "/static"}});
  http::request_parser<http::empty_body> p;
  p.header_limit(32 * 1024);
  p.eager(false);
  boost::system::error_code ec;
  p.put(boost::asio::buffer(data, size), ec);
  if (ec || !p.is_header_done()) return 0;
  auto& req = p.get();
  if (!mill::proxy::check_request(req).empty()) return 0;
  if (req.count(http::field::content_length) > 0 && req.count(http::field::transfer_encoding) > 0) {
    std::abort();
  }
  std::string_view target_host;
  std::string_view path = mill::proxy::target_path(req.target(), &target_host);
  std::string host = mill::proxy::normalize_host(
      target_host.empty() ? std::string_view(req[http::field::host]) : target_host);
  size_t i = table->match(host, path);
  if (i != mill::proxy::RouteTable::npos && i >= 4) std::abort();

  const bool upgrade = mill::proxy::is_upgrade(req);
  mill::proxy::prepare_request(req, {.client_ip = "192.0.2.1", .tls = false});
  if (req["X-Forwarded-For"] != "192.0.2.1") std::abort();
  for (auto f : {http::field::keep_alive, http::field::proxy_connection, http::field::te,
                 http::field::trailer, http::field::proxy_authorization, http::field::expect}) {
    if (req.count(f) != 0) std::abort();
  }
  if (upgrade ? req[http::field::connection] != "upgrade"
              : req.count(http::field::connection) != 0) {
    std::abort();
  }
  if (req.count(http::field::host) > 1) std::abort();
  return 0;
}
