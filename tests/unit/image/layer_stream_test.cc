// LayerStream: a layer blob handed from the download thread to the unpack thread,
// checked on the way. Real threads, a deliberately tiny ring so it wraps and fills.

#include "image/layer_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "support/oci_image.h"

namespace mill::image {
namespace {

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) % 251);
  return s;
}

// Pushes `bytes` in chunks of `chunk` bytes, then closes with the download's result.
std::thread produce(LayerStream& stream, const std::string& bytes, size_t chunk,
                    Result<void>* pushed = nullptr) {
  return std::thread([&stream, &bytes, chunk, pushed] {
    Result<void> r;
    for (size_t at = 0; at < bytes.size() && r; at += chunk) {
      r = stream.push(std::string_view(bytes).substr(at, chunk));
    }
    if (pushed != nullptr) *pushed = r;
    stream.close(r);
  });
}

Result<std::string> read_all(LayerStream& stream) {
  std::string out;
  for (;;) {
    auto chunk = MILL_TRY(stream.next());
    if (chunk.empty()) return out;
    out.append(chunk);
  }
}

TEST(LayerStream, BytesArriveInOrderThroughASmallRingAndTheDigestChecks) {
  const std::string blob = pattern(100000);
  LayerStream stream(testing::test_sha256_digest(blob), blob.size(), 61);
  auto producer = produce(stream, blob, 1000);
  auto got = read_all(stream);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, blob);
  EXPECT_TRUE(stream.finish());
  producer.join();
}

TEST(LayerStream, ABadDigestIsTheReadersLastAnswerAndFinishsVerdict) {
  const std::string blob = pattern(5000);
  std::string forged = blob;
  forged[2500] ^= 0x55;
  const std::string digest = testing::test_sha256_digest(blob);
  LayerStream stream(digest, blob.size(), 512);
  auto producer = produce(stream, forged, 333);
  auto got = read_all(stream);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(got.error().message, "blob " + digest + " does not match its digest (got " +
                                     testing::test_sha256_digest(forged) + ")");
  auto verdict = stream.finish();
  ASSERT_FALSE(verdict);
  EXPECT_EQ(verdict.error().message, got.error().message);
  producer.join();
}

// A tar's reader stops at its end-of-archive marker; what follows must still be
// downloaded and checked before the layer counts.
TEST(LayerStream, FinishChecksWhatTheReaderLeftUnread) {
  const std::string blob = pattern(20000);
  const std::string forged = blob.substr(0, blob.size() - 1) + static_cast<char>(blob.back() ^ 1);
  for (const std::string* sent : {&blob, &forged}) {
    LayerStream stream(testing::test_sha256_digest(blob), blob.size(), 256);
    auto producer = produce(stream, *sent, 100);
    std::string head;
    while (head.size() < 1000) {
      auto chunk = stream.next();
      ASSERT_TRUE(chunk && !chunk->empty());
      head.append(*chunk);
    }
    EXPECT_EQ(head, sent->substr(0, head.size()));
    auto verdict = stream.finish();
    producer.join();
    EXPECT_EQ(verdict.has_value(), sent == &blob) << (verdict ? "" : verdict.error().message);
  }
}

TEST(LayerStream, MoreBytesThanTheDescriptorSaysEndTheDownload) {
  const std::string blob = pattern(3000);
  LayerStream stream(testing::test_sha256_digest(blob), 2000, 4096);
  Result<void> pushed;
  auto producer = produce(stream, blob, 700, &pushed);
  auto got = read_all(stream);
  producer.join();
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message.find("is larger than its 2000 bytes"), std::string::npos)
      << got.error().message;
  EXPECT_FALSE(pushed) << "the download stops at the first byte too many";
  EXPECT_FALSE(stream.finish());
}

TEST(LayerStream, ADownloadErrorReachesTheReader) {
  LayerStream stream("sha256:" + std::string(64, 'a'), 10, 64);
  std::thread producer([&] {
    ASSERT_TRUE(stream.push("abc"));
    stream.close(make_error(ErrorCode::kUnavailable, "connection reset"));
  });
  auto first = stream.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, "abc");
  auto second = stream.next();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(second.error().message, "connection reset");
  producer.join();
}

// When the unpack fails, a download waiting for room is released with an error, so
// it ends instead of fetching the rest for nobody.
TEST(LayerStream, AbandonEndsADownloadBlockedOnAFullRing) {
  const std::string blob = pattern(50000);
  LayerStream stream(testing::test_sha256_digest(blob), blob.size(), 128);
  Result<void> pushed;
  auto producer = produce(stream, blob, 1000, &pushed);
  auto first = stream.next();
  ASSERT_TRUE(first);
  stream.abandon();
  auto verdict = stream.finish();
  producer.join();
  ASSERT_FALSE(pushed);
  EXPECT_NE(pushed.error().message.find("abandoned"), std::string::npos);
  EXPECT_FALSE(verdict);
}

}  // namespace
}  // namespace mill::image
