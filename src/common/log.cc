#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "common/clock.h"

namespace mill::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO";
    case Level::kWarn:
      return "WARN";
    case Level::kError:
      return "ERROR";
  }
  return "?";
}

}  // namespace

void set_level(Level level) { g_level = level; }

void write(Level level, std::string_view message) {
  if (level < g_level.load(std::memory_order_relaxed)) return;
  std::string line = format_rfc3339(std::chrono::system_clock::now(), true);
  line += ' ';
  line += level_name(level);
  line += ' ';
  line += message;
  line += '\n';
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
}

}  // namespace mill::log
