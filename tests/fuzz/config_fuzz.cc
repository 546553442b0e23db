// Fuzzes the config parser: any bytes must give a config or errors, never a crash,
// and every error must carry a position inside the input or none.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto outcome = mill::config::parse_config(text, "fuzz.toml");
  if (outcome.ok() != outcome.errors.empty()) std::abort();
  for (const auto& e : outcome.errors) {
    if (e.line < 0 || e.column < 0 || e.message.empty()) std::abort();
  }
  return 0;
}
