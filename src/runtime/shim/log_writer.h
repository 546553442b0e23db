#pragma once

// The shim's log writer: turns a container's raw stdout/stderr bytes into JSON lines
// {"ts":"2026-11-28T00:28:21.123Z","stream":"stdout","line":"..."} in
// DIR/current.jsonl, rotating by size to current.jsonl.1 (newest) .. .N (oldest).
// Plain C++ and POSIX only (it is linked into the static mill-shim). Not thread-safe.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mill::runtime::shim {

enum class Stream { kStdout = 0, kStderr = 1 };

class LogWriter {
 public:
  // max_bytes: rotate before a record would take current.jsonl past it (a file always
  // takes at least one record). max_files: rotated files kept; 0 keeps none.
  LogWriter(std::string dir, uint64_t max_bytes, int max_files);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Opens (appends to) DIR/current.jsonl. False with errno set on failure.
  bool open();
  // Buffers bytes of one stream and writes a record per complete line; a line longer
  // than kMaxLine becomes several records.
  void feed(Stream stream, const char* data, size_t size);
  // End of a stream: writes its unterminated last line, if any.
  void finish(Stream stream);

 private:
  void emit(Stream stream, std::string_view line, std::string& batch);
  void write_batch(std::string& batch);
  void rotate();

  std::string dir_;
  uint64_t max_bytes_;
  int max_files_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string pending_[2];
};

// JSON string body (no quotes) for arbitrary bytes: escapes what JSON requires and
// replaces invalid UTF-8 with U+FFFD, so every record is valid JSON.
void append_json_escaped(std::string& out, std::string_view bytes);
// Now, RFC 3339 UTC with milliseconds.
std::string now_rfc3339();

}  // namespace mill::runtime::shim
