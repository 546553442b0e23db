#include "model/ipv4.h"

#include <charconv>

#include "model/node.h"

namespace mill::model {

Result<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t out = 0;
  std::string_view rest = text;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (rest.empty() || rest.front() != '.') break;
      rest.remove_prefix(1);
    }
    // One to three digits, no sign, no leading '+', value <= 255.
    size_t n = 0;
    while (n < rest.size() && n < 4 && rest[n] >= '0' && rest[n] <= '9') ++n;
    unsigned value = 0;
    if (n == 0 || n > 3)
      return make_error(ErrorCode::kInvalidArgument,
                        "bad IPv4 address '" + std::string(text) + "'");
    std::from_chars(rest.data(), rest.data() + n, value);
    if (value > 255) break;
    out = (out << 8) | value;
    rest.remove_prefix(n);
    if (i == 3 && rest.empty()) return out;
  }
  return make_error(ErrorCode::kInvalidArgument, "bad IPv4 address '" + std::string(text) + "'");
}

std::string format_ipv4(uint32_t addr) {
  return std::to_string(addr >> 24) + "." + std::to_string((addr >> 16) & 0xff) + "." +
         std::to_string((addr >> 8) & 0xff) + "." + std::to_string(addr & 0xff);
}

Result<Ipv4Net> Ipv4Net::parse(std::string_view text) {
  size_t slash = text.find('/');
  auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument,
                      "bad IPv4 network '" + std::string(text) + "': " + why);
  };
  if (slash == std::string_view::npos) return bad("expected ADDRESS/PREFIX");
  auto addr = parse_ipv4(text.substr(0, slash));
  if (!addr) return bad("bad address");
  std::string_view p = text.substr(slash + 1);
  int prefix = -1;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
  if (p.empty() || p.size() > 2 || ec != std::errc() || ptr != p.data() + p.size() || prefix < 0 ||
      prefix > 32) {
    return bad("prefix must be 0..32");
  }
  Ipv4Net net{*addr, prefix};
  if ((net.addr & ~net.mask()) != 0) return bad("host bits set");
  return net;
}

std::string Ipv4Net::str() const { return format_ipv4(addr) + "/" + std::to_string(prefix); }

uint32_t Ipv4Net::mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }

bool Ipv4Net::contains(uint32_t a) const { return (a & mask()) == addr; }

bool Ipv4Net::contains(const Ipv4Net& inner) const {
  return inner.prefix >= prefix && contains(inner.addr);
}

uint32_t Ipv4Net::broadcast() const { return addr | ~mask(); }

std::optional<Ipv4Net> node_subnet(const Ipv4Net& cluster, int index) {
  if (cluster.prefix > 24 || index < 1) return std::nullopt;
  uint64_t count = uint64_t{1} << (24 - cluster.prefix);
  if (static_cast<uint64_t>(index) >= count) return std::nullopt;
  return Ipv4Net{cluster.addr + (static_cast<uint32_t>(index) << 8), 24};
}

std::optional<Ipv4Net> node_subnet(const Ipv4Net& cluster, std::string_view node_id) {
  auto index = node_index(node_id);
  if (!index) return std::nullopt;
  return node_subnet(cluster, *index);
}

}  // namespace mill::model
