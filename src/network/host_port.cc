#include "network/host_port.h"

#include <charconv>

namespace mill::network {
namespace {

bool parse_port(std::string_view text, uint16_t& port) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 1 || value > 65535) {
    return false;
  }
  port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

std::string HostPort::str() const {
  std::string ports = std::to_string(first);
  if (last != first) ports += "-" + std::to_string(last);
  return ports + "/" + protocol;
}

Result<HostPort> parse_host_port(std::string_view text) {
  auto bad = [&] {
    return make_error(ErrorCode::kInvalidArgument,
                      "bad host port \"" + std::string(text) +
                          "\": use PORT/tcp, PORT/udp or FIRST-LAST/tcp (ports 1-65535)");
  };
  HostPort out;
  std::string_view ports = text;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    out.protocol = std::string(text.substr(slash + 1));
    ports = text.substr(0, slash);
    if (out.protocol != "tcp" && out.protocol != "udp") return bad();
  }
  std::string_view first = ports, last = ports;
  if (auto dash = ports.find('-'); dash != std::string_view::npos) {
    first = ports.substr(0, dash);
    last = ports.substr(dash + 1);
  }
  if (!parse_port(first, out.first) || !parse_port(last, out.last) || out.last < out.first) {
    return bad();
  }
  return out;
}

}  // namespace mill::network
