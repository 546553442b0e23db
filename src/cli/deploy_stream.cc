#include "cli/deploy_stream.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli/deploy_progress.h"
#include "net/sse.h"

namespace mill::cli {

namespace json = boost::json;

namespace {

// Deploy events come every few seconds and the server sends keep-alive comments in
// between; a stream silent for this long is taken as lost.
constexpr std::chrono::minutes kIdleTimeout{2};

struct TerminalSize {
  size_t columns = 80;
  size_t rows = 24;
};

TerminalSize terminal_size() {
  TerminalSize size;
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    size.columns = ws.ws_col;
    size.rows = ws.ws_row;
  }
  return size;
}

// Cuts a line to `columns` display columns (one per UTF-8 character), so that no line
// wraps and the redraw's cursor arithmetic stays right.
std::string fit(const std::string& line, size_t columns) {
  size_t shown = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;  // continuation
    if (shown == columns) return line.substr(0, i);
    ++shown;
  }
  return line;
}

// Redraws the progress block in place: up over what was drawn last, clear, draw.
class LiveView {
 public:
  void draw(std::vector<std::string> lines) {
    TerminalSize size = terminal_size();
    size_t room = size.rows > 1 ? size.rows - 1 : 1;
    if (lines.size() > room) {
      size_t hidden = lines.size() - room + 1;
      lines.resize(room - 1);
      lines.push_back("  ... " + std::to_string(hidden) + " more lines");
    }
    std::string out;
    if (drawn_ > 0) out += "\r\x1b[" + std::to_string(drawn_) + "A";
    out += "\x1b[J";
    for (const auto& l : lines) out += fit(l, size.columns > 1 ? size.columns - 1 : 1) + "\n";
    drawn_ = lines.size();
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }

 private:
  size_t drawn_ = 0;
};

// Everything the reading thread and the spinner's ticker share, under one mutex.
struct Shared {
  explicit Shared(std::string title) : progress(std::move(title)) {}

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  DeployProgress progress;
  LiveView view;
  unsigned frame = 0;
};

}  // namespace

ProgressStyle choose_style(bool plain_flag) {
  if (plain_flag || !::isatty(STDOUT_FILENO)) return ProgressStyle::kPlain;
  const char* term = std::getenv("TERM");
  if (term && std::string_view(term) == "dumb") return ProgressStyle::kPlain;
  return ProgressStyle::kLive;
}

int report_rejection(int status, std::string_view body, std::ostream& err) {
  json::object doc;
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (!ec && v.is_object()) doc = std::move(v.as_object());
  auto text = [&](std::string_view key) {
    auto* f = doc.if_contains(key);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  std::string error = text("error");
  if (error.empty() && doc.empty()) error = std::string(body);
  if (error.empty()) error = "the server answered " + std::to_string(status);

  if (status == 409) {
    std::string id = text("deploy");
    if (id.empty()) id = text("id");
    if (id.empty()) id = text("deploy_id");
    if (id.empty()) {
      err << "mill: a deploy is already running: " << error << "\n";
    } else {
      err << "mill: a deploy is already running: " << id << "\n"
          << "  follow it with: mill deploy --status " << id << "\n";
    }
    return 1;
  }
  if (status == 400) {
    if (auto* list = doc.if_contains("errors"); list && list->is_array()) {
      for (const auto& e : list->as_array()) {
        err << (e.is_string() ? std::string(e.as_string()) : json::serialize(e)) << "\n";
      }
    }
    err << "mill: " << error << "\n";
    return 2;
  }
  err << "mill: " << error << "\n";
  return 1;
}

int run_deploy_stream(const ClientConfig& config, net::ClientRequest req, std::string title,
                      ProgressStyle style) {
  Shared shared(std::move(title));
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const bool live = style == ProgressStyle::kLive;
  bool received = false;
  net::SseParser parser;

  // The spinner turns and times count up between events.
  std::thread ticker;
  if (live) {
    ticker = std::thread([&] {
      std::unique_lock lock(shared.mu);
      while (!shared.stop) {
        shared.view.draw(shared.progress.live_lines(seconds(), shared.frame++));
        shared.cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return shared.stop; });
      }
    });
  }

  req.timeout = kIdleTimeout;
  req.body_sink = [&](std::string_view chunk) -> Result<void> {
    received = true;
    std::lock_guard lock(shared.mu);
    for (const auto& e : parser.feed(chunk)) {
      for (const auto& line : shared.progress.feed(e, seconds())) {
        if (!live) std::cout << line << "\n" << std::flush;
      }
    }
    if (live) shared.view.draw(shared.progress.live_lines(seconds(), shared.frame));
    if (parser.failed()) return make_error(ErrorCode::kInvalidArgument, "malformed event stream");
    // The outcome is known: no need to wait for the server to close.
    if (shared.progress.outcome() != DeployProgress::Outcome::kRunning) {
      return make_error(ErrorCode::kInternal, "finished");
    }
    return {};
  };
  auto res = call_api_raw(config, std::move(req));

  if (live) {
    {
      std::lock_guard lock(shared.mu);
      shared.stop = true;
    }
    shared.cv.notify_all();
    ticker.join();
    if (received) shared.view.draw(shared.progress.live_lines(seconds(), shared.frame));
  }
  const DeployProgress& progress = shared.progress;
  if (!res && !received) return fail(res.error().message);
  if (res && (res->status < 200 || res->status >= 300)) {
    return report_rejection(res->status, res->body, std::cerr);
  }
  int code = progress.exit_code();
  std::ostream& out = code == 0 ? std::cout : std::cerr;
  if (code == 3 && !res) out << "mill: " << res.error().message << "\n";
  auto summary = progress.summary();
  // A failure's headline in bold red where colours are shown, so it is not missed.
  if (code == 1 && live && ::isatty(STDERR_FILENO))
    summary[0] = "\x1b[1;31m" + summary[0] + "\x1b[0m";
  for (const auto& line : summary) out << line << "\n";
  return code;
}

}  // namespace mill::cli
