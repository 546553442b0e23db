#pragma once

// A port on the node that its containers may reach although the node refuses them
// otherwise (firewall.h): `--allow-host-port 5432/tcp` on `mill server` and `mill
// agent`. Pure.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace mill::network {

struct HostPort {
  uint16_t first = 0;            // 1..65535
  uint16_t last = 0;             // == first for one port
  std::string protocol = "tcp";  // "tcp" or "udp"

  // "5432/tcp", "8000-8100/udp"
  std::string str() const;
  bool operator==(const HostPort&) const = default;
};

// "PORT", "PORT/tcp", "PORT/udp" or a range "FIRST-LAST/PROTO"; no protocol means tcp.
// kInvalidArgument saying the expected form.
Result<HostPort> parse_host_port(std::string_view text);

}  // namespace mill::network
