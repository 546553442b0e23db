#include "server/secrets.h"

#include "model/config.h"
#include "model/json.h"
#include "model/names.h"

namespace mill::server {

namespace json = boost::json;

Result<void> validate_secret_name(std::string_view name) {
  if (!model::is_valid_name(name)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid secret name: use 1 to 128 of A-Z a-z 0-9 _ . - "
                      "(and not '.' or '..')");
  }
  return {};
}

Secrets::Secrets(store::Store& store, crypto::Aead aead, const Clock& clock, size_t max_value_bytes)
    : store_(store), aead_(std::move(aead)), clock_(clock), max_value_bytes_(max_value_bytes) {}

Result<void> Secrets::put(const std::string& name, const std::string& value) {
  MILL_TRY(validate_secret_name(name));
  if (value.size() > max_value_bytes_) {
    return make_error(ErrorCode::kTooLarge, "secret value is over the limit of " +
                                                std::to_string(max_value_bytes_) + " bytes");
  }
  std::string box = MILL_TRY(aead_.seal(value, name));
  json::object record{{"box", crypto::to_hex(box)}, {"updated_at", format_rfc3339(clock_.now())}};
  MILL_TRY(store_.put(std::string(kPrefix) + name, model::serialize(record)));
  return {};
}

Result<std::string> Secrets::get(const std::string& name) {
  MILL_TRY(validate_secret_name(name));
  auto kv = MILL_TRY(store_.get(std::string(kPrefix) + name));
  if (!kv) return make_error(ErrorCode::kNotFound, "no secret named '" + name + "'");
  auto record = MILL_TRY(model::parse_object(kv->value, {"box", "updated_at"}));
  std::string box_hex = MILL_TRY(model::get_string(record, "box", true));
  auto box = crypto::from_hex(box_hex);
  if (!box) return make_error(ErrorCode::kInternal, "stored secret '" + name + "' is corrupt");
  auto plain = aead_.open(*box, name);
  if (!plain) {
    return make_error(ErrorCode::kInternal,
                      "stored secret '" + name + "' cannot be decrypted with this secrets key");
  }
  return std::move(*plain);
}

Result<std::vector<SecretInfo>> Secrets::list() {
  auto listing = MILL_TRY(store_.list(kPrefix));
  std::vector<SecretInfo> out;
  for (const auto& kv : listing.kvs) {
    SecretInfo info;
    info.name = kv.key.substr(kPrefix.size());
    if (auto record = model::parse_object(kv.value, {"box", "updated_at"})) {
      info.updated_at = model::get_string(*record, "updated_at", false).value_or("");
    }
    out.push_back(std::move(info));
  }
  return out;
}

Result<void> Secrets::remove(const std::string& name) {
  MILL_TRY(validate_secret_name(name));
  auto r = store_.remove(std::string(kPrefix) + name);
  if (!r) {
    if (r.error().code == ErrorCode::kNotFound) {
      return make_error(ErrorCode::kNotFound, "no secret named '" + name + "'");
    }
    return Unexpected(std::move(r).error());
  }
  return {};
}

Result<std::string> Secrets::expand(std::string_view text) {
  static constexpr std::string_view kOpen = "${secret:";
  if (text.find(kOpen) == std::string_view::npos) return std::string(text);
  MILL_TRY(model::find_secret_references(text));  // well-formed before we substitute
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t open = text.find(kOpen, pos);
    if (open == std::string_view::npos) break;
    size_t close = text.find('}', open);
    out.append(text.substr(pos, open - pos));
    std::string name(text.substr(open + kOpen.size(), close - open - kOpen.size()));
    auto value = get(name);
    if (!value && value.error().code == ErrorCode::kNotFound) {
      return make_error(ErrorCode::kNotFound, "secret '" + name + "' does not exist");
    }
    out += MILL_TRY(std::move(value));
    pos = close + 1;
  }
  out.append(text.substr(pos));
  return out;
}

}  // namespace mill::server
