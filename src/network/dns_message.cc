#include "network/dns_message.h"

namespace mill::network::dns {
namespace {

Unexpected bad(const std::string& why) {
  return make_error(ErrorCode::kInvalidArgument, "dns: " + why);
}

uint16_t get16(std::span<const uint8_t> p, size_t at) {
  return static_cast<uint16_t>((p[at] << 8) | p[at + 1]);
}

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xff));
}

void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v & 0xffff));
}

// Reads the (possibly compressed) name at `at`, advancing `at` past it in the
// message. Every pointer must go strictly backwards, which rules out loops.
Result<std::string> read_name(std::span<const uint8_t> p, size_t& at) {
  std::string name;
  size_t pos = at;
  size_t wire_len = 1;  // the root label
  bool jumped = false;
  for (;;) {
    if (pos >= p.size()) return bad("name runs past the end");
    uint8_t len = p[pos];
    if ((len & 0xc0) == 0xc0) {
      if (pos + 1 >= p.size()) return bad("name pointer runs past the end");
      size_t target = static_cast<size_t>(((len & 0x3f) << 8) | p[pos + 1]);
      if (target >= pos) return bad("name pointer does not point backwards");
      if (!jumped) at = pos + 2;
      jumped = true;
      pos = target;
      continue;
    }
    if ((len & 0xc0) != 0) return bad("unknown label type");
    if (len == 0) {
      if (!jumped) at = pos + 1;
      return name;
    }
    if (pos + 1 + len > p.size()) return bad("label runs past the end");
    wire_len += 1 + len;
    if (wire_len > 255) return bad("name longer than 255 bytes");
    if (!name.empty()) name += '.';
    for (size_t i = 0; i < len; ++i) {
      char c = static_cast<char>(p[pos + 1 + i]);
      if (c == '.' || c == '\0') return bad("label with '.' or NUL");
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      name += c;
    }
    pos += 1 + len;
  }
}

Result<Question> read_question(std::span<const uint8_t> p, size_t& at) {
  Question q;
  q.name = MILL_TRY(read_name(p, at));
  if (at + 4 > p.size()) return bad("question runs past the end");
  q.type = get16(p, at);
  q.klass = get16(p, at + 2);
  at += 4;
  return q;
}

void put_name(std::vector<uint8_t>& out, std::string_view name) {
  while (!name.empty()) {
    size_t dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    if (label.size() > 63) label = label.substr(0, 63);
    out.push_back(static_cast<uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
  }
  out.push_back(0);
}

void put_header(std::vector<uint8_t>& out, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an) {
  put16(out, id);
  put16(out, flags);
  put16(out, qd);
  put16(out, an);
  put16(out, 0);
  put16(out, 0);
}

}  // namespace

Result<Header> parse_header(std::span<const uint8_t> p) {
  if (p.size() < kHeaderSize) return bad("message shorter than a header");
  Header h;
  h.id = get16(p, 0);
  uint16_t flags = get16(p, 2);
  h.response = (flags & 0x8000) != 0;
  h.opcode = static_cast<uint8_t>((flags >> 11) & 0xf);
  h.truncated = (flags & 0x0200) != 0;
  h.recursion_desired = (flags & 0x0100) != 0;
  h.rcode = static_cast<Rcode>(flags & 0xf);
  h.qdcount = get16(p, 4);
  h.ancount = get16(p, 6);
  h.nscount = get16(p, 8);
  h.arcount = get16(p, 10);
  return h;
}

Result<Query> parse_query(std::span<const uint8_t> p) {
  Header h = MILL_TRY(parse_header(p));
  if (h.response) return bad("not a query");
  if (h.opcode != 0) return bad("opcode " + std::to_string(h.opcode) + " is not QUERY");
  if (h.qdcount != 1) return bad("expected one question");
  size_t at = kHeaderSize;
  Query q;
  q.id = h.id;
  q.opcode = h.opcode;
  q.recursion_desired = h.recursion_desired;
  q.question = MILL_TRY(read_question(p, at));
  // Uncompressed (the normal case) when the wire form is as long as the name encodes.
  size_t plain = q.question.name.empty() ? 1 : q.question.name.size() + 2;
  if (at - kHeaderSize == plain + 4)
    q.question_wire.assign(p.begin() + kHeaderSize, p.begin() + at);
  return q;  // answer/authority/additional (EDNS OPT) are ignored
}

std::vector<uint8_t> encode_answer(const Query& q, Rcode rcode, const std::vector<uint32_t>& a,
                                   uint32_t ttl, bool authoritative) {
  std::vector<uint8_t> out;
  out.reserve(kMaxUdpAnswer);
  put_header(out, q.id, 0, 1, 0);
  if (!q.question_wire.empty()) {
    out.insert(out.end(), q.question_wire.begin(), q.question_wire.end());
  } else {
    put_name(out, q.question.name);
    put16(out, q.question.type);
    put16(out, q.question.klass);
  }
  size_t room = out.size() >= kMaxUdpAnswer ? 0 : (kMaxUdpAnswer - out.size()) / 16;
  uint16_t count = 0;
  for (uint32_t addr : a) {
    if (count == room) break;
    put16(out, 0xc000 | kHeaderSize);  // the question's name
    put16(out, kTypeA);
    put16(out, kClassIn);
    put32(out, ttl);
    put16(out, 4);
    put32(out, addr);
    ++count;
  }
  uint16_t flags = static_cast<uint16_t>(0x8000 | 0x0080 | static_cast<uint8_t>(rcode));
  if (authoritative) flags |= 0x0400;
  if (q.recursion_desired) flags |= 0x0100;
  out[2] = static_cast<uint8_t>(flags >> 8);
  out[3] = static_cast<uint8_t>(flags & 0xff);
  out[6] = static_cast<uint8_t>(count >> 8);
  out[7] = static_cast<uint8_t>(count & 0xff);
  return out;
}

std::vector<uint8_t> encode_error(const Header& h, Rcode rcode) {
  std::vector<uint8_t> out;
  uint16_t flags =
      static_cast<uint16_t>(0x8000 | (h.opcode << 11) | 0x0080 | static_cast<uint8_t>(rcode));
  if (h.recursion_desired) flags |= 0x0100;
  put_header(out, h.id, flags, 0, 0);
  return out;
}

std::vector<uint8_t> encode_query(uint16_t id, std::string_view name, uint16_t type) {
  std::vector<uint8_t> out;
  put_header(out, id, 0x0100, 1, 0);
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  put_name(out, name);
  put16(out, type);
  put16(out, kClassIn);
  return out;
}

Result<Response> parse_response(std::span<const uint8_t> p) {
  Response r;
  r.header = MILL_TRY(parse_header(p));
  if (!r.header.response) return bad("not a response");
  size_t at = kHeaderSize;
  for (uint16_t i = 0; i < r.header.qdcount; ++i) {
    auto q = MILL_TRY(read_question(p, at));
    if (i == 0) r.question = std::move(q);
  }
  for (uint16_t i = 0; i < r.header.ancount; ++i) {
    MILL_TRY(read_name(p, at));
    if (at + 10 > p.size()) return bad("record runs past the end");
    uint16_t type = get16(p, at);
    uint16_t klass = get16(p, at + 2);
    uint16_t rdlen = get16(p, at + 8);
    at += 10;
    if (at + rdlen > p.size()) return bad("record data runs past the end");
    if (type == kTypeA && klass == kClassIn) {
      if (rdlen != 4) return bad("A record with " + std::to_string(rdlen) + " bytes");
      r.a.push_back(static_cast<uint32_t>(get16(p, at)) << 16 | get16(p, at + 2));
    }
    at += rdlen;
  }
  return r;
}

}  // namespace mill::network::dns
