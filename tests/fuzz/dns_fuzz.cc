// Fuzzes the DNS parser with arbitrary packets: parsing never crashes or reads out of
// bounds, and every query it accepts gets an answer that parses back, with the same id
// and question, within the UDP limit.

#include <cstdint>
#include <cstdlib>
#include <span>

#include "network/dns_message.h"

using namespace mill::network::dns;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> packet(data, size);
  (void)parse_header(packet);
  (void)parse_response(packet);
  auto q = parse_query(packet);
  if (!q) return 0;
  auto out = encode_answer(*q, Rcode::kNoError, {0x0a000001, 0x0a000002}, 5, true);
  auto r = parse_response(out);
  if (!r || out.size() > kMaxUdpAnswer) std::abort();
  if (r->header.id != q->id || r->question.name != q->question.name) std::abort();
  if (r->question.type != q->question.type || r->a.size() != 2) std::abort();
  return 0;
}
