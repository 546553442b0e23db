#pragma once

// Line-oriented logging to stderr: "2026-11-27T23:40:00.123Z INFO message".
// Each line goes out in one write(2), so lines from several threads never mix.
// Never pass a token or a secret value to it.

#include <string_view>

namespace mill::log {

enum class Level { kDebug, kInfo, kWarn, kError };

void set_level(Level level);
void write(Level level, std::string_view message);

inline void debug(std::string_view m) { write(Level::kDebug, m); }
inline void info(std::string_view m) { write(Level::kInfo, m); }
inline void warn(std::string_view m) { write(Level::kWarn, m); }
inline void error(std::string_view m) { write(Level::kError, m); }

}  // namespace mill::log
