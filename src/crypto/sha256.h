#pragma once

// Incremental SHA-256 (OpenSSL EVP), for verifying content-addressed blobs while they
// stream to disk, and "sha256:<hex>" digests as OCI images name content.

#include <memory>
#include <string>
#include <string_view>

namespace mill::crypto {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(std::string_view data);
  // Lowercase hex of the digest of everything passed to update(). Call once.
  std::string finish_hex();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Lowercase hex SHA-256 of data (64 characters).
std::string sha256_hex(std::string_view data);
// "sha256:" + sha256_hex(data): the OCI digest of data.
std::string sha256_digest(std::string_view data);

}  // namespace mill::crypto
