#pragma once

// Plain-text tables for people: columns padded to their widest cell.

#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace mill::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) { rows_.push_back(std::move(headers)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // A line printed as is after the rows added so far; it does not widen any column
  // (a crash-loop message under its allocation).
  void add_note(std::string line) { notes_.push_back({rows_.size(), std::move(line)}); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<std::pair<size_t, std::string>> notes_;  // (rows before it, text)
};

std::string format_bytes(double bytes);      // "1.5G", "512M"
std::string format_cores(double cores);      // "1.25"
std::string format_seconds(double seconds);  // "4.2s", "3m05s", "2h10m", "3d04h"

}  // namespace mill::cli
