#include "model/ipv4.h"

#include <charconv>

namespace mill::model {

std::optional<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t out = 0;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (text.empty() || text.front() != '.') return std::nullopt;
      text.remove_prefix(1);
    }
    unsigned part = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), part);
    size_t used = static_cast<size_t>(ptr - text.data());
    if (ec != std::errc() || used == 0 || used > 3 || part > 255) return std::nullopt;
    if (used > 1 && text.front() == '0') return std::nullopt;  // no octal-looking parts
    out = out << 8 | part;
    text.remove_prefix(used);
  }
  if (!text.empty()) return std::nullopt;
  return out;
}

std::string format_ipv4(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." +
         std::to_string(a >> 8 & 255) + "." + std::to_string(a & 255);
}

std::optional<Ipv4Net> Ipv4Net::parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto addr = parse_ipv4(text.substr(0, slash));
  std::string_view len = text.substr(slash + 1);
  int prefix = -1;
  auto [ptr, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
  if (!addr || ec != std::errc() || ptr != len.data() + len.size() || prefix < 0 || prefix > 32) {
    return std::nullopt;
  }
  Ipv4Net net{*addr, prefix};
  if ((net.addr & net.mask()) != net.addr) return std::nullopt;
  return net;
}

std::string Ipv4Net::str() const { return format_ipv4(addr) + "/" + std::to_string(prefix); }

std::optional<Ipv4Net> node_subnet(const Ipv4Net& cluster, int index) {
  if (cluster.prefix > 24 || index < 1) return std::nullopt;
  uint64_t count = uint64_t{1} << (24 - cluster.prefix);
  if (static_cast<uint64_t>(index) >= count) return std::nullopt;
  return Ipv4Net{cluster.addr + (static_cast<uint32_t>(index) << 8), 24};
}

}  // namespace mill::model
