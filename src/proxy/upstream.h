#pragma once

// Choosing an upstream for a request and dialing it (upstream.cc), for session.cc. The
// Upstream itself and the worker's keep-alive pool are in internal.h.

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string>
#include <vector>

#include "proxy/internal.h"

namespace mill::proxy::detail {

// Counts a request against its upstream while it is in flight (drain waits for 0).
class InFlight {
 public:
  explicit InFlight(Upstream& u) : u_(&u) { u_->in_flight.fetch_add(1); }
  ~InFlight() { u_->in_flight.fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  Upstream* u_;
};

// Least requests in flight, not recently failed, not tried for this request; ties go
// round robin. Null when every upstream has been tried.
Upstream* pick(const Route& r, const std::vector<Upstream*>& tried);

// A new connection to `u` on the worker's loop, within the connect timeout. On failure:
// null, `u` is skipped for the eject time, and `failure` says why.
asio::awaitable<std::unique_ptr<PooledConnection>> connect_upstream(Worker& w, Upstream& u,
                                                                    std::string& failure);

}  // namespace mill::proxy::detail
