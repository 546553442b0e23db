#pragma once

// Size and duration strings as written in config files and API bodies.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace mill::model {

// Parses a byte size: "1024", "512M", "2G", "10G", "512Mi", "1KiB", "4MB", "100B".
// Units K, M, G, T (either case) are powers of 1024; an optional "i" and/or "B" may
// follow ("B" alone means bytes). Integers only; no sign, spaces or fractions.
// Errors (kInvalidArgument) on bad syntax and on values that overflow int64_t.
Result<std::int64_t> parse_size(std::string_view text);

// Parses a duration: one or more <integer><unit> parts, unit one of ms, s, m, h, summed:
// "250ms", "2s", "1m", "1h", "1h30m", "1m30s500ms". A bare number (no unit) is an
// error, as are signs, spaces, fractions and totals that overflow milliseconds.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// Formats a size with the largest exact unit: 536870912 -> "512M", 1000 -> "1000".
std::string format_size(std::int64_t bytes);

// Formats a duration with the largest exact units: 5400000ms -> "1h30m", 250ms -> "250ms".
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace mill::model
