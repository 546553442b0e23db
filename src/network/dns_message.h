#pragma once

// DNS messages (RFC 1035), just what Mill's resolver needs: parse a query, encode an
// answer of A records or an error, and parse a response (tests, the fuzzer, checking
// what an upstream sent back). Pure: bytes in, values out; every input is untrusted
// and is bounds-checked, compression pointers included.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace mill::network::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeAny = 255;
inline constexpr uint16_t kClassIn = 1;
inline constexpr uint16_t kClassAny = 255;
inline constexpr size_t kHeaderSize = 12;
// Answers we make ourselves stay within the classic UDP limit, so no client ever
// needs TCP for them.
inline constexpr size_t kMaxUdpAnswer = 512;

enum class Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

struct Question {
  std::string name;  // lowercase ASCII, dot-separated, no trailing dot; "" is the root
  uint16_t type = 0;
  uint16_t klass = 0;
};

struct Query {
  uint16_t id = 0;
  uint8_t opcode = 0;
  bool recursion_desired = false;
  Question question;
  // The question section as received, echoed in answers so the case of the name is
  // kept (some resolvers check it, RFC draft "0x20"); empty if it was compressed.
  std::vector<uint8_t> question_wire;
};

// A query with opcode QUERY and exactly one question. kInvalidArgument (with the
// reason) for anything else: a response, a truncated packet, a bad name (labels over
// 63 bytes, names over 255, pointer loops, a '.' inside a label).
Result<Query> parse_query(std::span<const uint8_t> packet);

// The header fields of anything at least 12 bytes long, to answer what cannot be
// parsed. kInvalidArgument when shorter.
struct Header {
  uint16_t id = 0;
  bool response = false;
  uint8_t opcode = 0;
  bool recursion_desired = false;
  bool truncated = false;
  Rcode rcode = Rcode::kNoError;
  uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
};
Result<Header> parse_header(std::span<const uint8_t> packet);

// A response to `q` with its question echoed and one A record per address (as many as
// fit in kMaxUdpAnswer). `authoritative` sets AA; RA is always set (we recurse by
// forwarding).
std::vector<uint8_t> encode_answer(const Query& q, Rcode rcode, const std::vector<uint32_t>& a,
                                   uint32_t ttl, bool authoritative);
// A header-only error response (no question), for queries we could not parse.
std::vector<uint8_t> encode_error(const Header& h, Rcode rcode);
// A standard recursive query for `name` (no trailing dot needed).
std::vector<uint8_t> encode_query(uint16_t id, std::string_view name, uint16_t type);

struct Response {
  Header header;
  Question question;        // the first question, if any
  std::vector<uint32_t> a;  // the A records of the answer section
};
Result<Response> parse_response(std::span<const uint8_t> packet);

}  // namespace mill::network::dns
