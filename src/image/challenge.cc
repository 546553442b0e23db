#include "image/challenge.h"

#include <cctype>

namespace mill::image {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void skip_space(std::string_view s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

}  // namespace

Result<AuthChallenge> parse_auth_challenge(std::string_view h) {
  auto bad = [&] {
    return make_error(ErrorCode::kInvalidArgument,
                      "cannot read WWW-Authenticate '" + std::string(h.substr(0, 200)) + "'");
  };
  AuthChallenge out;
  size_t i = 0;
  skip_space(h, i);
  size_t start = i;
  while (i < h.size() && is_token_char(h[i])) ++i;
  if (i == start) return bad();
  out.scheme = lower(h.substr(start, i - start));
  while (true) {
    skip_space(h, i);
    if (i < h.size() && h[i] == ',') {
      ++i;
      continue;
    }
    if (i >= h.size()) break;
    start = i;
    while (i < h.size() && is_token_char(h[i])) ++i;
    if (i == start) return bad();
    std::string key = lower(h.substr(start, i - start));
    skip_space(h, i);
    // A token without '=' starts the next challenge: we read only the first.
    if (i >= h.size() || h[i] != '=') break;
    ++i;
    skip_space(h, i);
    std::string value;
    if (i < h.size() && h[i] == '"') {
      ++i;
      bool closed = false;
      while (i < h.size()) {
        char c = h[i++];
        if (c == '\\' && i < h.size()) {
          value += h[i++];
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (!closed) return bad();
    } else {
      start = i;
      while (i < h.size() && is_token_char(h[i])) ++i;
      value = std::string(h.substr(start, i - start));
    }
    out.params[key] = std::move(value);
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += kTable[v >> 18];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += kTable[v & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    out += kTable[v >> 18];
    out += kTable[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += kTable[v >> 18];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace mill::image
