#pragma once

// The shape of every read-only command (`mill nodes`, `mill services`, `mill task ID`
// ...): GET one API resource, print its JSON with --json, otherwise render it for
// people. One place for the request, the --json flag and the error handling.

#include <boost/json/fwd.hpp>
#include <functional>
#include <string>

namespace CLI {
class App;
}

namespace mill::cli {

// Adds subcommand `name`; when it runs, GETs `target()` (called then, so it may read
// options parsed into the subcommand) and hands the answer to `print`.
CLI::App* add_get_command(CLI::App& app, int& exit_code, const std::string& name,
                          const std::string& description, std::function<std::string()> target,
                          std::function<void(const boost::json::value&)> print);

}  // namespace mill::cli
