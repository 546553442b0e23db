#include "network/dns_message.h"

#include <gtest/gtest.h>

#include "network/dns_server.h"

namespace mill::network::dns {
namespace {

using Bytes = std::vector<uint8_t>;

TEST(DnsMessage, QueryRoundTripsAndNamesAreLowercased) {
  Bytes wire = encode_query(0xbeef, "Task-AB12.Mill.", kTypeA);
  auto q = parse_query(wire);
  ASSERT_TRUE(q) << q.error().to_string();
  EXPECT_EQ(q->id, 0xbeef);
  EXPECT_TRUE(q->recursion_desired);
  EXPECT_EQ(q->question.name, "task-ab12.mill");
  EXPECT_EQ(q->question.type, kTypeA);
  EXPECT_EQ(q->question.klass, kClassIn);
}

TEST(DnsMessage, AnswerCarriesRecordsTtlAndTheQuestionAsAsked) {
  auto q = parse_query(encode_query(7, "Task-X.MILL", kTypeA));
  ASSERT_TRUE(q);
  Bytes out = encode_answer(*q, Rcode::kNoError, {0x0a630105, 0x0a630106}, 5, true);
  auto r = parse_response(out);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->header.id, 7);
  EXPECT_TRUE(r->header.response);
  EXPECT_EQ(r->header.rcode, Rcode::kNoError);
  EXPECT_EQ(r->a, (std::vector<uint32_t>{0x0a630105, 0x0a630106}));
  EXPECT_EQ(r->question.name, "task-x.mill");
  EXPECT_NE(out[2] & 0x04, 0) << "AA";
  EXPECT_NE(out[3] & 0x80, 0) << "RA";
  // The question bytes are echoed as sent, case included.
  std::string echoed(out.begin() + 12, out.begin() + 12 + 13);
  EXPECT_EQ(echoed, std::string("\x06Task-X\x04MILL\x00", 13));
  // TTL of the first record: after name pointer (2), type (2), class (2).
  size_t ttl_at = out.size() - 2 * 16 + 6;
  EXPECT_EQ(
      (out[ttl_at] << 24) | (out[ttl_at + 1] << 16) | (out[ttl_at + 2] << 8) | out[ttl_at + 3], 5);
}

TEST(DnsMessage, AnswersStayWithinTheUdpLimit) {
  auto q = parse_query(encode_query(1, "big.mill", kTypeA));
  ASSERT_TRUE(q);
  std::vector<uint32_t> many(100, 0x0a000001);
  Bytes out = encode_answer(*q, Rcode::kNoError, many, 5, true);
  EXPECT_LE(out.size(), kMaxUdpAnswer);
  auto r = parse_response(out);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->a.size(), (kMaxUdpAnswer - 12 - 14) / 16);
}

TEST(DnsMessage, NxDomainAndErrors) {
  auto q = parse_query(encode_query(9, "nope.mill", kTypeAaaa));
  ASSERT_TRUE(q);
  auto r = parse_response(encode_answer(*q, Rcode::kNxDomain, {}, 5, true));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header.rcode, Rcode::kNxDomain);
  EXPECT_TRUE(r->a.empty());
  Header h;
  h.id = 0x1234;
  auto e = parse_response(encode_error(h, Rcode::kFormErr));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->header.id, 0x1234);
  EXPECT_EQ(e->header.rcode, Rcode::kFormErr);
  EXPECT_EQ(e->header.qdcount, 0);
}

Bytes header(uint16_t flags, uint16_t qd) {
  return {0x12,
          0x34,
          static_cast<uint8_t>(flags >> 8),
          static_cast<uint8_t>(flags),
          0,
          static_cast<uint8_t>(qd),
          0,
          0,
          0,
          0,
          0,
          0};
}

Bytes with(Bytes b, std::initializer_list<uint8_t> tail) {
  b.insert(b.end(), tail);
  return b;
}

TEST(DnsMessage, RejectsMalformedQueries) {
  EXPECT_FALSE(parse_query(Bytes{1, 2, 3}));
  EXPECT_FALSE(parse_query(with(header(0x8100, 1), {0, 0, 1, 0, 1}))) << "a response";
  EXPECT_FALSE(parse_query(with(header(0x0100, 0), {}))) << "no question";
  EXPECT_FALSE(parse_query(with(header(0x0100, 2), {0, 0, 1, 0, 1, 0, 0, 1, 0, 1})));
  EXPECT_FALSE(parse_query(with(header(0x2900, 1), {0, 0, 1, 0, 1}))) << "opcode UPDATE";
  EXPECT_FALSE(parse_query(with(header(0x0100, 1), {3, 'a', 'b'}))) << "label past the end";
  EXPECT_FALSE(parse_query(with(header(0x0100, 1), {1, 'a', 0, 0}))) << "short type/class";
  EXPECT_FALSE(parse_query(with(header(0x0100, 1), {0xc0, 12, 0, 1, 0, 1}))) << "self pointer";
  EXPECT_FALSE(parse_query(with(header(0x0100, 1), {0xc0, 40, 0, 1, 0, 1}))) << "forward pointer";
  EXPECT_FALSE(parse_query(with(header(0x0100, 1), {0x40, 0, 1, 0, 1}))) << "label type";
  EXPECT_FALSE(parse_query(with(header(0x0100, 1), {3, 'a', '.', 'b', 0, 0, 1, 0, 1})));
  Bytes long_label = header(0x0100, 1);
  long_label.push_back(64);
  long_label.insert(long_label.end(), 64, 'a');
  long_label.insert(long_label.end(), {0, 0, 1, 0, 1});
  EXPECT_FALSE(parse_query(long_label)) << "64-byte label";
  Bytes long_name = header(0x0100, 1);
  for (int i = 0; i < 5; ++i) {
    long_name.push_back(60);
    long_name.insert(long_name.end(), 60, 'a');
  }
  long_name.insert(long_name.end(), {0, 0, 1, 0, 1});
  EXPECT_FALSE(parse_query(long_name)) << "name over 255 bytes";
}

TEST(DnsMessage, CompressedQuestionIsReencodedInTheAnswer) {
  // A pointer back to offset 4, whose bytes (0, 1) read as the root name.
  auto q = parse_query(with(header(0x0100, 1), {0xc0, 4, 0, 1, 0, 1}));
  ASSERT_TRUE(q) << q.error().to_string();
  EXPECT_EQ(q->question.name, "");
  EXPECT_TRUE(q->question_wire.empty());
  auto r = parse_response(encode_answer(*q, Rcode::kNxDomain, {}, 5, true));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->question.type, kTypeA);
}

TEST(ResolvConf, NameserversInOrderAtMostThree) {
  EXPECT_EQ(parse_resolv_conf("# generated\nsearch example.com\nnameserver 10.0.0.2\n"
                              "nameserver\t127.0.0.53 # stub\n; nameserver 9.9.9.9\n"
                              "  nameserver ::1\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"),
            (std::vector<std::string>{"10.0.0.2", "127.0.0.53", "::1"}));
  EXPECT_TRUE(parse_resolv_conf("").empty());
  EXPECT_TRUE(parse_resolv_conf("nameserver\nnameservers 1.2.3.4\n").empty());
}

}  // namespace
}  // namespace mill::network::dns
