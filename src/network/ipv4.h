#pragma once

// The network module uses model's IPv4 values (the control plane's address pool
// uses the same ones).

#include "model/ipv4.h"

namespace mill::network {
using model::format_ipv4;
using model::Ipv4Net;
using model::parse_ipv4;
}  // namespace mill::network
