#pragma once

// Server-sent events (text/event-stream), the reading side: the CLI follows logs and
// deploy progress with it. Pure and incremental: feed it bytes as they arrive, take
// the events that completed. Handles "event:", "data:" (several joined by "\n"),
// comments, CR/LF/CRLF line ends; ignores "id:" and "retry:".

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mill::net {

struct SseEvent {
  std::string event;  // "" for the default ("message")
  std::string data;

  bool operator==(const SseEvent&) const = default;
};

class SseParser {
 public:
  // A line longer than this (a broken or hostile stream) ends parsing: failed().
  explicit SseParser(size_t max_line = 1 << 20) : max_line_(max_line) {}

  std::vector<SseEvent> feed(std::string_view bytes);
  bool failed() const { return failed_; }

 private:
  void line(std::string_view text, std::vector<SseEvent>& out);

  size_t max_line_;
  std::string partial_;
  bool last_was_cr_ = false;
  bool failed_ = false;
  SseEvent current_;
  bool has_data_ = false;
};

}  // namespace mill::net
