#include "cli/argv.h"

#include <algorithm>

namespace mill::cli {

SplitArgs split_spawn_command(std::vector<std::string> args) {
  SplitArgs out;
  // The subcommand is the first argument after the program's name that is no option.
  auto spawn = args.empty() ? args.end()
                            : std::find_if(args.begin() + 1, args.end(), [](const std::string& a) {
                                return !a.starts_with("-");
                              });
  if (spawn != args.end() && *spawn != "spawn") spawn = args.end();
  auto marker = std::find_if(spawn, args.end(),
                             [](const std::string& a) { return a == "--command" || a == "--"; });
  // `--command` with nothing after it is left to CLI11, which says a value is missing.
  if (spawn == args.end() || marker == args.end() ||
      (*marker == "--command" && marker + 1 == args.end())) {
    out.args = std::move(args);
    return out;
  }
  out.command = std::vector<std::string>(marker + 1, args.end());
  args.erase(marker, args.end());
  out.args = std::move(args);
  return out;
}

}  // namespace mill::cli
