#pragma once

// Plain-text tables for people: columns padded to their widest cell.

#include <ostream>
#include <string>
#include <vector>

namespace mill::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) { rows_.push_back(std::move(headers)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string format_bytes(double bytes);  // "1.5G", "512M"
std::string format_cores(double cores);  // "1.25"

}  // namespace mill::cli
