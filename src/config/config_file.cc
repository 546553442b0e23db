#include "config/config_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mill::config {

ParseOutcome parse_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return {std::nullopt, {{path, 0, 0, std::string("cannot read file: ") + std::strerror(errno)}}};
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return {std::nullopt, {{path, 0, 0, "cannot read file: I/O error"}}};
  return parse_config(text.str(), path);
}

}  // namespace mill::config
