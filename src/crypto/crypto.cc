#include "crypto/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <memory>

namespace mill::crypto {
namespace {

constexpr unsigned char kBoxVersion = 1;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

unsigned char* bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

Unexpected crypto_error(const char* what) {
  return make_error(ErrorCode::kInternal, std::string("openssl: ") + what + " failed");
}

}  // namespace

Result<std::string> random_bytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(bytes(out), static_cast<int>(n)) != 1) {
    return crypto_error("RAND_bytes");
  }
  return out;
}

Result<std::string> random_hex(size_t n) { return to_hex(MILL_TRY(random_bytes(n))); }

std::string to_hex(std::string_view in) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(in.size() * 2);
  for (unsigned char c : in) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

Result<std::string> from_hex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return make_error(ErrorCode::kInvalidArgument, "odd-length hex");
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]);
    int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return make_error(ErrorCode::kInvalidArgument, "not hex");
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool token_matches(std::string_view presented, std::string_view expected) {
  unsigned char a[SHA256_DIGEST_LENGTH];
  unsigned char b[SHA256_DIGEST_LENGTH];
  SHA256(bytes(presented), presented.size(), a);
  SHA256(bytes(expected), expected.size(), b);
  // An empty expected token never matches: it means auth was not set up.
  return CRYPTO_memcmp(a, b, sizeof a) == 0 && !expected.empty();
}

Aead::Aead(std::string_view key) { std::copy(key.begin(), key.end(), key_.begin()); }

Result<Aead> Aead::create(std::string_view key) {
  if (key.size() != kKeyBytes) {
    return make_error(ErrorCode::kInvalidArgument,
                      "secrets key must be " + std::to_string(kKeyBytes) + " bytes");
  }
  return Aead(key);
}

Result<std::string> Aead::seal(std::string_view plaintext, std::string_view ad) const {
  std::string nonce = MILL_TRY(random_bytes(kNonceBytes));
  std::string out;
  out.resize(1 + kNonceBytes + plaintext.size() + kTagBytes);
  out[0] = static_cast<char>(kBoxVersion);
  std::copy(nonce.begin(), nonce.end(), out.begin() + 1);
  unsigned char* ct = bytes(out) + 1 + kNonceBytes;

  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), bytes(nonce)) != 1) {
    return crypto_error("EncryptInit");
  }
  if (!ad.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(ad), static_cast<int>(ad.size())) != 1) {
    return crypto_error("EncryptUpdate(ad)");
  }
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ct, &len, bytes(plaintext),
                                              static_cast<int>(plaintext.size())) != 1) {
    return crypto_error("EncryptUpdate");
  }
  if (EVP_EncryptFinal_ex(ctx.get(), ct + plaintext.size(), &len) != 1) {
    return crypto_error("EncryptFinal");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, ct + plaintext.size()) != 1) {
    return crypto_error("GET_TAG");
  }
  return out;
}

Result<std::string> Aead::open(std::string_view box, std::string_view ad) const {
  if (box.size() < 1 + kNonceBytes + kTagBytes ||
      static_cast<unsigned char>(box[0]) != kBoxVersion) {
    return make_error(ErrorCode::kInvalidArgument, "ciphertext is malformed");
  }
  std::string_view nonce = box.substr(1, kNonceBytes);
  std::string_view ct = box.substr(1 + kNonceBytes, box.size() - 1 - kNonceBytes - kTagBytes);
  std::string tag(box.substr(box.size() - kTagBytes));
  std::string out(ct.size(), '\0');

  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), bytes(nonce)) != 1) {
    return crypto_error("DecryptInit");
  }
  if (!ad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(ad), static_cast<int>(ad.size())) != 1) {
    return crypto_error("DecryptUpdate(ad)");
  }
  if (!ct.empty() &&
      EVP_DecryptUpdate(ctx.get(), bytes(out), &len, bytes(ct), static_cast<int>(ct.size())) != 1) {
    return crypto_error("DecryptUpdate");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, bytes(tag)) != 1) {
    return crypto_error("SET_TAG");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), bytes(out) + ct.size(), &len) != 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "ciphertext failed authentication (tampered, or another key)");
  }
  return out;
}

}  // namespace mill::crypto
