#include "proxy/upstream.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace mill::proxy::detail {

Upstream* pick(const Route& r, const std::vector<Upstream*>& tried) {
  const size_t n = r.upstreams.size();
  if (n == 0) return nullptr;
  size_t start = r.next.fetch_add(1, std::memory_order_relaxed);
  int64_t now = steady_ns();
  Upstream* best = nullptr;
  Upstream* fallback = nullptr;  // when every untried one is ejected
  for (size_t i = 0; i < n; ++i) {
    Upstream* u = r.upstreams[(start + i) % n].get();
    if (std::find(tried.begin(), tried.end(), u) != tried.end()) continue;
    if (u->ejected_until.load(std::memory_order_relaxed) > now) {
      if (!fallback) fallback = u;
      continue;
    }
    if (!best || u->in_flight.load(std::memory_order_relaxed) <
                     best->in_flight.load(std::memory_order_relaxed)) {
      best = u;
    }
  }
  return best ? best : fallback;
}

asio::awaitable<std::unique_ptr<PooledConnection>> connect_upstream(Worker& w, Upstream& u,
                                                                    std::string& failure) {
  const ProxyOptions& o = w.state.options;
  auto conn = std::make_unique<PooledConnection>(PooledConnection{beast::tcp_stream(w.io), 0});
  conn->stream.expires_after(o.connect_timeout);
  auto [ec] = co_await conn->stream.async_connect(u.endpoint, asio::as_tuple(asio::use_awaitable));
  if (ec) {
    u.ejected_until.store(steady_ns() + std::chrono::nanoseconds(o.eject_time).count(),
                          std::memory_order_relaxed);
    failure = "cannot connect to " + u.address + ": " + ec.message();
    co_return nullptr;
  }
  boost::system::error_code ignored;
  conn->stream.socket().set_option(tcp::no_delay(true), ignored);
  co_return conn;
}

}  // namespace mill::proxy::detail
