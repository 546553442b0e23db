// mill logs [-f] [--tail N] NAME (spec: Logs): prints a task's log lines, or a
// service's (every allocation's, merged, each line prefixed with its allocation),
// stdout lines to stdout and stderr lines to stderr, as `docker logs` does.

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "net/sse.h"

namespace mill::cli {

namespace json = boost::json;

namespace {

struct LogsOptions {
  std::string name;
  bool follow = false;
  int tail = -1;
  bool timestamps = false;
};

void print_event(const net::SseEvent& e, const LogsOptions& opts) {
  boost::system::error_code ec;
  auto v = json::parse(e.data, ec);
  if (ec || !v.is_object()) return;
  const auto& o = v.as_object();
  auto text = [&](std::string_view k) {
    auto* f = o.if_contains(k);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  if (e.event == "end") {
    std::string how = text("status");
    if (auto* c = o.if_contains("exit_code"); c && c->is_int64()) {
      how += " (exit code " + std::to_string(c->as_int64()) + ")";
    }
    std::cerr << "mill: " << text("id") << " ended: " << how << "\n";
    return;
  }
  std::ostream& out = text("stream") == "stderr" ? std::cerr : std::cout;
  if (opts.timestamps) out << text("ts") << " ";
  // A service's log merges its allocations': say whose line it is, as Swarm does.
  if (std::string alloc = text("alloc"); !alloc.empty()) out << alloc << " | ";
  out << text("line") << "\n";
  out.flush();
}

}  // namespace

void add_logs_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<LogsOptions>();
  auto* cmd = app.add_subcommand("logs", "Print a task's or a service's log (follow it with -f)");
  cmd->add_option("name", opts->name, "Task id or service name")->required();
  cmd->add_flag("--follow,-f", opts->follow,
                "Keep printing new lines until the task ends (a service's: until Ctrl-C)");
  cmd->add_option("--tail,-n", opts->tail, "Only the last N lines");
  cmd->add_flag("--timestamps,-t", opts->timestamps, "Prefix each line with its time");
  cmd->callback([opts, &exit_code] {
    std::string target = "/v1/logs/" + opts->name;
    std::string query;
    if (opts->follow) query += "follow=true";
    if (opts->tail >= 0)
      query += std::string(query.empty() ? "" : "&") + "tail=" + std::to_string(opts->tail);
    if (!query.empty()) target += "?" + query;
    net::SseParser parser;
    auto done = call_api_stream(
        load_client_config(), target,
        [&](std::string_view chunk) -> Result<void> {
          for (const auto& e : parser.feed(chunk)) print_event(e, *opts);
          if (parser.failed())
            return make_error(ErrorCode::kInvalidArgument, "malformed log stream");
          return {};
        },
        // A followed task may be quiet for long; the server ends the stream itself.
        opts->follow ? std::chrono::hours(24 * 365) : std::chrono::seconds(30));
    if (!done) exit_code = fail(done.error().message);
  });
}

}  // namespace mill::cli
