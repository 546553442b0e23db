#include "agent/log_service.h"

#include <algorithm>
#include <boost/json.hpp>

#include "model/json.h"

namespace mill::agent {

namespace json = boost::json;

namespace {

// Followers are checked this often for new lines (inotify would wake sooner; 100 ms
// keeps `logs -f` feeling live at almost no cost).
constexpr std::chrono::milliseconds kPollEvery{100};

std::string end_event(const std::string& id, const model::AllocState& s) {
  json::object o{{"id", id}, {"status", model::to_string(s.status)}};
  if (s.exit_code) o["exit_code"] = *s.exit_code;
  return "event: end\ndata: " + model::serialize(o) + "\n\n";
}

net::HttpResponse not_found(const std::string& id) {
  net::HttpResponse r;
  r.status = 404;
  r.body = model::serialize(json::object{{"error", "no log for '" + id + "' on this node"}});
  return r;
}

}  // namespace

std::string sse_event(const runtime::LogLine& line, const std::string& alloc) {
  json::object o{{"ts", line.ts}, {"stream", line.stream}, {"line", line.line}};
  if (!alloc.empty()) o["alloc"] = alloc;
  return "data: " + model::serialize(o) + "\n\n";
}

LogService::LogService(Containers& containers, AllocRunner& runner, std::string node_id)
    : containers_(containers), runner_(runner), node_(std::move(node_id)) {
  thread_ = std::thread([this] { loop(); });
}

LogService::~LogService() { stop(); }

void LogService::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& f : followers_) f.writer->close();
  followers_.clear();
}

void LogService::stream(const model::LogRequest& query,
                        std::shared_ptr<net::ResponseWriter> writer) {
  Follower f;
  f.writer = writer;
  if (!query.service.empty()) {
    f.id = query.service;
    f.service = true;
    auto ids = runner_.allocations_of(query.service);
    if (ids.empty()) return writer->respond(not_found(query.service));
    for (const auto& id : ids) {
      f.sources.push_back({id, runtime::LogCursor::at_start(containers_.log_dir(id))});
    }
  } else {
    if (!runner_.state(query.alloc_id)) return writer->respond(not_found(query.alloc_id));
    f.id = query.alloc_id;
    f.sources.push_back(
        {query.alloc_id, runtime::LogCursor::at_start(containers_.log_dir(query.alloc_id))});
  }
  // One cursor per allocation reads what exists and then follows, so no line is lost
  // or repeated between the two.
  std::optional<size_t> tail;
  if (query.tail) tail = static_cast<size_t>(*query.tail);
  std::string out = read_new(f, tail);
  writer->begin_stream(200, "text/event-stream");
  if (!out.empty()) writer->write(std::move(out));
  if (!query.follow) return writer->close();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return writer->close();
    followers_.push_back(std::move(f));
  }
  wake_.notify_all();
}

std::string LogService::read_new(Follower& f, std::optional<size_t> tail) {
  if (f.service) {
    // Allocations that started since (a deploy, a restart) join the stream.
    for (const auto& id : runner_.allocations_of(f.id)) {
      bool known = std::any_of(f.sources.begin(), f.sources.end(),
                               [&](const Source& s) { return s.id == id; });
      if (!known) f.sources.push_back({id, runtime::LogCursor::at_start(containers_.log_dir(id))});
    }
  }
  std::vector<std::pair<runtime::LogLine, const std::string*>> lines;
  for (auto& s : f.sources) {
    auto got = s.cursor.next();
    if (!got) continue;
    for (auto& l : *got) lines.emplace_back(std::move(l), &s.id);
  }
  // Each allocation's lines are in order already; timestamps are RFC 3339 UTC with a
  // fixed width, so comparing them as text is comparing the times.
  if (f.sources.size() > 1) {
    std::stable_sort(lines.begin(), lines.end(),
                     [](const auto& a, const auto& b) { return a.first.ts < b.first.ts; });
  }
  size_t from = 0;
  if (tail && *tail < lines.size()) from = lines.size() - *tail;
  std::string out;
  for (size_t i = from; i < lines.size(); ++i) {
    out += sse_event(lines[i].first, f.service ? *lines[i].second : std::string());
  }
  return out;
}

bool LogService::pump(Follower& f) {
  if (f.writer->client_gone()) return true;
  if (f.service) {
    std::string out = read_new(f, std::nullopt);
    if (!out.empty() && !f.writer->write(std::move(out))) return true;
    return false;  // a service's log follows until the client leaves
  }
  // Read the state before the lines: an allocation seen ended has written its last line.
  auto state = runner_.state(f.id);
  bool ended = !state || model::is_terminal(state->status);
  std::string out = read_new(f, std::nullopt);
  if (!out.empty() && !f.writer->write(std::move(out))) return true;
  if (!ended) return false;
  if (state) f.writer->write(end_event(f.id, *state));
  f.writer->close();
  return true;
}

void LogService::loop() {
  std::unique_lock lock(mutex_);
  while (true) {
    // Only a follower makes it look at files: with none, it sleeps.
    if (followers_.empty()) {
      wake_.wait(lock, [this] { return stopping_ || !followers_.empty(); });
    } else {
      wake_.wait_for(lock, kPollEvery, [this] { return stopping_; });
    }
    if (stopping_) return;
    // New followers may join meanwhile (push_back keeps list iterators valid).
    auto it = followers_.begin();
    while (it != followers_.end()) {
      lock.unlock();
      bool done = pump(*it);
      lock.lock();
      it = done ? followers_.erase(it) : std::next(it);
    }
  }
}

}  // namespace mill::agent
