#pragma once

// Small file helpers the tests share.

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace mill::testing {

// The whole file (binary-safe); "" when it cannot be read.
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The names in a directory (not recursive).
inline std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

}  // namespace mill::testing
