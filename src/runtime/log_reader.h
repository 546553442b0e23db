#pragma once

// Reading what mill-shim writes (shim/log_writer.h): DIR/current.jsonl plus the rotated
// current.jsonl.1 (newest) .. .N (oldest). Lines come back oldest first. Only complete
// records (ending in '\n') are returned; malformed ones are skipped.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace mill::runtime {

struct LogLine {
  std::string ts;      // RFC 3339, UTC, milliseconds
  std::string stream;  // "stdout" or "stderr"
  std::string line;    // without the newline

  bool operator==(const LogLine&) const = default;
};

// PURE: the complete records in `text` (a partial last line is ignored).
std::vector<LogLine> parse_log_records(std::string_view text);

// Every line in the log dir, oldest first. An absent or empty dir gives no lines.
Result<std::vector<LogLine>> read_logs(const std::string& log_dir);
// The last `n` lines, oldest first.
Result<std::vector<LogLine>> tail_logs(const std::string& log_dir, size_t n);

// A position in a log dir that survives rotation: the file is named by its inode (its
// "generation": rotation renames, so the inode follows the file) plus a byte offset.
// Not thread-safe; one cursor per follower.
class LogCursor {
 public:
  // Before the first line that exists now (follow from the beginning).
  static LogCursor at_start(std::string log_dir);
  // After the last complete line that exists now (follow only new lines).
  static Result<LogCursor> at_end(std::string log_dir);

  // The complete lines written since the cursor, oldest first, and moves past them.
  // Lines rotated out of the kept files before being read are lost (not an error).
  Result<std::vector<LogLine>> next();

 private:
  explicit LogCursor(std::string dir) : dir_(std::move(dir)) {}

  std::string dir_;
  uint64_t inode_ = 0;  // 0: before every file
  uint64_t offset_ = 0;
};

}  // namespace mill::runtime
