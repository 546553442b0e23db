#include "crypto/crypto.h"

#include <gtest/gtest.h>

#include <string>

namespace mill::crypto {
namespace {

Aead make_aead(char fill) { return *Aead::create(std::string(kKeyBytes, fill)); }

TEST(Aead, RoundTrip) {
  Aead aead = make_aead('k');
  std::string plain = "postgres://user:hunter2@db/prod";
  auto box = aead.seal(plain, "database_url");
  ASSERT_TRUE(box);
  EXPECT_EQ(box->find(plain), std::string::npos) << "plaintext visible in ciphertext";
  auto opened = aead.open(*box, "database_url");
  ASSERT_TRUE(opened) << opened.error().to_string();
  EXPECT_EQ(*opened, plain);
}

TEST(Aead, EmptyAndBinaryValues) {
  Aead aead = make_aead('k');
  for (std::string plain : {std::string(), std::string("\0\x01\xff", 3), std::string(65536, 'x')}) {
    auto opened = aead.open(*aead.seal(plain, "n"), "n");
    ASSERT_TRUE(opened);
    EXPECT_EQ(*opened, plain);
  }
}

TEST(Aead, FreshNoncePerSeal) {
  Aead aead = make_aead('k');
  EXPECT_NE(*aead.seal("same", "n"), *aead.seal("same", "n"));
}

TEST(Aead, TamperedCiphertextDetected) {
  Aead aead = make_aead('k');
  auto sealed = aead.seal("secret value", "name");
  ASSERT_TRUE(sealed);
  std::string box = *sealed;
  // Nonce, ciphertext and tag: every byte of it is covered.
  ASSERT_GE(box.size(), std::string("secret value").size() + 12 + 16) << box.size();
  for (size_t i = 0; i < box.size(); ++i) {
    std::string bad = box;
    bad[i] ^= 0x01;
    auto opened = aead.open(bad, "name");
    ASSERT_FALSE(opened) << "flip at byte " << i << " went unnoticed";
    EXPECT_EQ(opened.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_FALSE(aead.open(box.substr(0, box.size() - 1), "name"));
  EXPECT_FALSE(aead.open("", "name"));
}

TEST(Aead, WrongKeyRejected) {
  std::string box = *make_aead('a').seal("secret value", "name");
  EXPECT_FALSE(make_aead('b').open(box, "name"));
}

TEST(Aead, BoundToAssociatedData) {
  Aead aead = make_aead('k');
  std::string box = *aead.seal("secret value", "alpha");
  EXPECT_FALSE(aead.open(box, "beta"));
}

TEST(Aead, KeyLengthChecked) {
  EXPECT_FALSE(Aead::create("short"));
  EXPECT_FALSE(Aead::create(std::string(kKeyBytes + 1, 'k')));
}

TEST(ConstantTimeEqual, ComparesWholeValue) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "xbc"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("abc", ""));
  EXPECT_FALSE(constant_time_equal(std::string("a\0c", 3), std::string("a\0d", 3)));
}

TEST(Random, HexTokensAreLongAndDistinct) {
  auto a = random_hex(32);
  auto b = random_hex(32);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 64u);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*from_hex(*a), *from_hex(*a));
  EXPECT_EQ(to_hex(*from_hex(*a)), *a);
  EXPECT_FALSE(from_hex("abc"));
  EXPECT_FALSE(from_hex("zz"));
}

}  // namespace
}  // namespace mill::crypto

namespace mill::crypto {
namespace {

TEST(TokenMatches, OnlyTheExactToken) {
  std::string token = *random_hex(32);
  EXPECT_TRUE(token_matches(token, token));
  EXPECT_FALSE(token_matches(token + "x", token));
  EXPECT_FALSE(token_matches(token.substr(0, 63), token));
  std::string flipped = token;
  flipped[10] = flipped[10] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(token_matches(flipped, token));
  EXPECT_FALSE(token_matches("", token));
  EXPECT_FALSE(token_matches("", "")) << "an unset token must never authenticate";
}

}  // namespace
}  // namespace mill::crypto
