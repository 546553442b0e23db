// Fuzzes the SSE parser (what `mill logs -f` reads from the network): any bytes, split
// anywhere, never crash, and feeding them in two pieces gives the same events as in one.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/sse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  mill::net::SseParser whole(4096);
  auto all = whole.feed(bytes);
  mill::net::SseParser split(4096);
  size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  auto first = split.feed(bytes.substr(0, cut));
  auto second = split.feed(bytes.substr(cut));
  first.insert(first.end(), second.begin(), second.end());
  if (whole.failed() != split.failed()) std::abort();
  if (!whole.failed() && first != all) std::abort();
  return 0;
}
