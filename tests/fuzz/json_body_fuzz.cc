// Fuzzes the strict JSON body readers the API uses for every request body.

#include <cstdint>
#include <string_view>

#include "model/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto obj = mill::model::parse_object(text, {"value", "id", "name", "address", "resources"});
  if (!obj) return 0;
  (void)mill::model::get_string(*obj, "value", false);
  (void)mill::model::get_string(*obj, "name", true);
  if (auto* r = obj->if_contains("resources")) {
    auto res = mill::model::resources_from_json(*r);
    if (res) (void)mill::model::serialize(mill::model::to_json(*res));
  }
  return 0;
}
