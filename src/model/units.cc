#include "model/units.h"

#include <array>
#include <limits>
#include <utility>

namespace mill::model {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads the leading digits of `text` into `value`; false on overflow or no digits.
bool read_integer(std::string_view& text, std::int64_t& value) {
  std::size_t i = 0;
  value = 0;
  while (i < text.size() && is_digit(text[i])) {
    int digit = text[i] - '0';
    if (value > (kMax - digit) / 10) return false;
    value = value * 10 + digit;
    ++i;
  }
  text.remove_prefix(i);
  return i > 0;
}

Unexpected bad_size(std::string_view text, std::string_view why) {
  return make_error(ErrorCode::kInvalidArgument,
                    "invalid size \"" + std::string(text) + "\": " + std::string(why));
}

Unexpected bad_duration(std::string_view text, std::string_view why) {
  return make_error(ErrorCode::kInvalidArgument,
                    "invalid duration \"" + std::string(text) + "\": " + std::string(why));
}

int unit_shift(char unit) {
  switch (unit) {
    case 'K':
    case 'k':
      return 10;
    case 'M':
    case 'm':
      return 20;
    case 'G':
    case 'g':
      return 30;
    case 'T':
    case 't':
      return 40;
    default:
      return -1;
  }
}

}  // namespace

Result<std::int64_t> parse_size(std::string_view text) {
  std::string_view rest = text;
  std::int64_t value = 0;
  if (rest.empty() || !is_digit(rest.front())) {
    return bad_size(text, "expected a number with an optional unit K, M, G or T, like \"512M\"");
  }
  if (!read_integer(rest, value)) return bad_size(text, "number too large");
  int shift = 0;
  if (!rest.empty() && unit_shift(rest.front()) >= 0) {
    shift = unit_shift(rest.front());
    rest.remove_prefix(1);
    if (!rest.empty() && rest.front() == 'i') rest.remove_prefix(1);
  }
  if (!rest.empty() && (rest.front() == 'B' || rest.front() == 'b')) rest.remove_prefix(1);
  if (!rest.empty()) {
    return bad_size(text, "unknown unit (use K, M, G or T, powers of 1024, or plain bytes)");
  }
  if (value > (kMax >> shift)) return bad_size(text, "too large");
  return value << shift;
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return bad_duration(text, "empty (use a number and unit, like \"2s\")");
  std::string_view rest = text;
  std::int64_t total = 0;
  while (!rest.empty()) {
    std::int64_t value = 0;
    if (!is_digit(rest.front())) {
      return bad_duration(text,
                          "expected a number and unit ms, s, m or h, like \"2s\" or \"1h30m\"");
    }
    if (!read_integer(rest, value)) return bad_duration(text, "number too large");
    std::int64_t scale = 0;
    if (rest.starts_with("ms")) {
      scale = 1;
      rest.remove_prefix(2);
    } else if (rest.starts_with("s")) {
      scale = 1000;
      rest.remove_prefix(1);
    } else if (rest.starts_with("m")) {
      scale = 60 * 1000;
      rest.remove_prefix(1);
    } else if (rest.starts_with("h")) {
      scale = 60 * 60 * 1000;
      rest.remove_prefix(1);
    } else {
      return bad_duration(text, "missing or unknown unit (use ms, s, m or h)");
    }
    if (value > kMax / scale || value * scale > kMax - total) {
      return bad_duration(text, "too large");
    }
    total += value * scale;
  }
  return std::chrono::milliseconds(total);
}

std::string format_size(std::int64_t bytes) {
  static constexpr std::array<std::pair<int, char>, 4> kUnits{
      {{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}}};
  if (bytes > 0) {
    for (auto [shift, unit] : kUnits) {
      std::int64_t scale = std::int64_t{1} << shift;
      if (bytes % scale == 0) return std::to_string(bytes / scale) + unit;
    }
  }
  return std::to_string(bytes);
}

std::string format_duration(std::chrono::milliseconds duration) {
  std::int64_t ms = duration.count();
  if (ms <= 0) return std::to_string(ms) + "ms";
  std::string out;
  static constexpr std::array<std::pair<std::int64_t, const char*>, 4> kUnits{
      {{3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}}};
  for (auto [scale, unit] : kUnits) {
    if (ms >= scale) {
      out += std::to_string(ms / scale) + unit;
      ms %= scale;
    }
  }
  return out;
}

}  // namespace mill::model
