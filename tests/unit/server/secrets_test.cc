#include "server/secrets.h"

#include <gtest/gtest.h>

#include "store/memory_store.h"

namespace mill::server {
namespace {

class SecretsTest : public ::testing::Test {
 protected:
  crypto::Aead aead(char fill = 'k') { return *crypto::Aead::create(std::string(32, fill)); }
  store::MemoryStore store_;
  ManualClock clock_;
};

TEST_F(SecretsTest, RoundTripAndListNamesOnly) {
  Secrets s(store_, aead(), clock_);
  ASSERT_TRUE(s.put("database_url", "postgres://u:pw@db/x"));
  ASSERT_TRUE(s.put("api.key-2", "v2"));
  EXPECT_EQ(*s.get("database_url"), "postgres://u:pw@db/x");
  auto list = *s.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "api.key-2");
  EXPECT_EQ(list[1].name, "database_url");
  EXPECT_EQ(list[1].updated_at, "2023-11-14T22:13:20Z");
}

TEST_F(SecretsTest, StoredOnlyAsCiphertext) {
  Secrets s(store_, aead(), clock_);
  ASSERT_TRUE(s.put("pw", "correct horse battery staple"));
  auto kv = *store_.get("/secrets/pw");
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->value.find("correct horse"), std::string::npos);
}

TEST_F(SecretsTest, CiphertextMovedToAnotherNameIsRejected) {
  Secrets s(store_, aead(), clock_);
  ASSERT_TRUE(s.put("a", "value-a"));
  ASSERT_TRUE(s.put("b", "value-b"));
  ASSERT_TRUE(store_.put("/secrets/b", (*store_.get("/secrets/a"))->value));
  EXPECT_FALSE(s.get("b")) << "the name is bound as associated data";
}

TEST_F(SecretsTest, WrongKeyCannotRead) {
  ASSERT_TRUE(Secrets(store_, aead('k'), clock_).put("a", "v"));
  auto r = Secrets(store_, aead('z'), clock_).get("a");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInternal);
}

TEST_F(SecretsTest, LimitsAndNames) {
  Secrets s(store_, aead(), clock_, 16);
  auto big = s.put("a", std::string(17, 'x'));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kTooLarge);
  EXPECT_TRUE(s.put("a", std::string(16, 'x')));
  for (std::string bad : {std::string(), std::string("."), std::string(".."), std::string("a/b"),
                          std::string("a b"), std::string(129, 'a'), std::string("é")}) {
    auto r = s.put(bad, "v");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(s.put(std::string(128, 'a'), "v"));
  EXPECT_EQ(s.get("missing").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(s.remove("missing").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(s.remove("a"));
  EXPECT_EQ(s.get("a").error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace mill::server
