#pragma once

// Secrets: values encrypted with AES-256-GCM before they reach the store, each bound
// to its name as associated data. Only get() ever returns a value.
//
// Thread-safety: every method may be called from any thread.

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "crypto/crypto.h"
#include "store/store.h"

namespace mill::server {

struct SecretInfo {
  std::string name;
  std::string updated_at;  // RFC 3339
};

class Secrets {
 public:
  static constexpr size_t kDefaultMaxValueBytes = 64 * 1024;

  Secrets(store::Store& store, crypto::Aead aead, const Clock& clock,
          size_t max_value_bytes = kDefaultMaxValueBytes);

  // kInvalidArgument for a bad name, kTooLarge for a value over the limit.
  Result<void> put(const std::string& name, const std::string& value);
  // kNotFound when absent.
  Result<std::string> get(const std::string& name);
  Result<std::vector<SecretInfo>> list();
  Result<void> remove(const std::string& name);

  // `text` with every "${secret:NAME}" replaced by the secret's value; kNotFound
  // naming the first missing secret. Only for delivering env and registry credentials
  // to the node that needs them, never for logging.
  Result<std::string> expand(std::string_view text);

  static constexpr std::string_view kPrefix = "/secrets/";

 private:
  store::Store& store_;
  crypto::Aead aead_;
  const Clock& clock_;
  size_t max_value_bytes_;
};

// Checks a secret name: [A-Za-z0-9_.-]{1,128}, not "." or "..".
Result<void> validate_secret_name(std::string_view name);

}  // namespace mill::server
