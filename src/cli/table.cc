#include "cli/table.h"

#include <cstdio>

namespace mill::cli {

void Table::print(std::ostream& out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size());
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  size_t note = 0;
  for (size_t r = 0; r < rows_.size(); ++r) {
    for (; note < notes_.size() && notes_[note].first <= r; ++note) {
      out << notes_[note].second << "\n";
    }
    const auto& row = rows_[r];
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    // Trailing padding would only show as wrapped lines on a narrow terminal.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
  for (; note < notes_.size(); ++note) out << notes_[note].second << "\n";
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  // As `ls -h` and `df -h`: one decimal below 10 of a unit, whole ones from there
  // ("712K", "1.5G", "64M").
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 || bytes >= 9.95 ? "%.0f%s" : "%.1f%s", bytes, units[u]);
  return buf;
}

std::string format_cores(double cores) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", cores);
  return buf;
}

std::string format_seconds(double s) {
  char buf[32];
  if (s < 0) s = 0;
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600,
                  static_cast<int>(s) / 60 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldd%02ldh", static_cast<long>(s) / 86400,
                  static_cast<long>(s) / 3600 % 24);
  }
  return buf;
}

}  // namespace mill::cli
