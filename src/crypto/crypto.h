#pragma once

// Small, safe wrappers over OpenSSL: random bytes, constant-time comparison and an
// AEAD (AES-256-GCM) for secrets at rest. Pure computation, no files.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace mill::crypto {

inline constexpr size_t kKeyBytes = 32;    // AES-256
inline constexpr size_t kNonceBytes = 12;  // GCM's 96-bit nonce
inline constexpr size_t kTagBytes = 16;

// Cryptographically secure random bytes (OpenSSL RAND_bytes).
Result<std::string> random_bytes(size_t n);

// n random bytes as lowercase hex (2n characters).
Result<std::string> random_hex(size_t n);

std::string to_hex(std::string_view bytes);
Result<std::string> from_hex(std::string_view hex);

// True when a and b are equal. The time taken depends only on the lengths, never on
// where the contents differ, so a token cannot be guessed byte by byte.
bool constant_time_equal(std::string_view a, std::string_view b);

// Checks a presented bearer token against the expected one. Both are hashed with
// SHA-256 first and the digests compared in constant time, so neither the contents
// nor the length of the expected token leak through timing.
bool token_matches(std::string_view presented, std::string_view expected);

// AES-256-GCM with a fresh random nonce per call. The associated data is
// authenticated but not encrypted (we bind a secret's name to its ciphertext, so a
// ciphertext cannot be moved under another name). Output: version byte, nonce,
// ciphertext, tag.
class Aead {
 public:
  // key must be kKeyBytes long.
  static Result<Aead> create(std::string_view key);

  Result<std::string> seal(std::string_view plaintext, std::string_view associated_data) const;
  // kInvalidArgument if the box was tampered with, sealed under another key or
  // another associated data.
  Result<std::string> open(std::string_view box, std::string_view associated_data) const;

 private:
  explicit Aead(std::string_view key);
  std::array<unsigned char, kKeyBytes> key_{};
};

}  // namespace mill::crypto
