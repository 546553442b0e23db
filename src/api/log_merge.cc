#include "api/log_merge.h"

#include <algorithm>
#include <boost/json.hpp>
#include <functional>
#include <mutex>

namespace mill::api {

namespace {

namespace json = boost::json;

// One SSE event's timestamp: the "ts" of its data line's JSON ("" when it has none,
// so it sorts first).
std::string event_time(const std::string& event) {
  size_t data = event.find("data: ");
  if (data == std::string::npos) return "";
  size_t end = event.find('\n', data);
  boost::system::error_code ec;
  auto v = json::parse(event.substr(data + 6, end == std::string::npos ? end : end - data - 6), ec);
  if (ec || !v.is_object()) return "";
  const auto* ts = v.as_object().if_contains("ts");
  return ts && ts->is_string() ? std::string(ts->as_string()) : "";
}

class Merge;

class Part final : public net::ResponseWriter {
 public:
  Part(std::shared_ptr<Merge> merge, size_t index) : merge_(std::move(merge)), index_(index) {}
  void respond(net::HttpResponse response) override;
  void begin_stream(int status, std::string content_type, std::vector<net::Header>) override;
  bool write(std::string chunk) override;
  void close() override;
  bool client_gone() const override;
  void on_client_gone(std::function<void()> callback) override;

 private:
  std::shared_ptr<Merge> merge_;
  size_t index_;
};

class Merge : public std::enable_shared_from_this<Merge> {
 public:
  Merge(std::shared_ptr<net::ResponseWriter> client, std::vector<std::string> nodes, bool follow,
        std::optional<int64_t> tail)
      : client_(std::move(client)), follow_(follow), tail_(tail), parts_(nodes.size()) {
    for (size_t i = 0; i < nodes.size(); ++i) parts_[i].node = std::move(nodes[i]);
  }

  void take_client_gone() {
    client_->on_client_gone([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->client_left();
    });
  }

  void respond(size_t i, net::HttpResponse r) {
    std::lock_guard lock(mutex_);
    PartState& p = parts_[i];
    if (p.done) return;
    if (r.status == 200) {
      p.begun = true;
      add_locked(p, std::move(r.body));
    } else {
      p.error = std::move(r);
    }
    end_locked(p);
  }

  void begin(size_t i, int status) {
    std::lock_guard lock(mutex_);
    PartState& p = parts_[i];
    if (p.done) return;
    if (status != 200) {
      net::HttpResponse r;
      r.status = status;
      r.body = R"({"error":"the node answered )" + std::to_string(status) + R"("})";
      p.error = std::move(r);
      return end_locked(p);
    }
    p.begun = true;
    if (follow_) begin_client_locked();
  }

  bool write(size_t i, std::string chunk) {
    std::lock_guard lock(mutex_);
    PartState& p = parts_[i];
    if (!p.done && p.begun) add_locked(p, std::move(chunk));
    return !client_->client_gone() && !finished_;
  }

  void close(size_t i) {
    std::lock_guard lock(mutex_);
    PartState& p = parts_[i];
    if (!p.done) end_locked(p);
  }

  bool client_gone() const { return client_->client_gone(); }

  void on_client_gone(size_t i, std::function<void()> callback) {
    {
      std::lock_guard lock(mutex_);
      if (!gone_) {
        parts_[i].on_gone = std::move(callback);
        return;
      }
    }
    callback();
  }

 private:
  struct PartState {
    std::string node;
    bool begun = false;
    bool done = false;
    std::string pending;                                    // an event not whole yet
    std::vector<std::pair<std::string, std::string>> held;  // (time, event): no follow
    std::optional<net::HttpResponse> error;
    std::function<void()> on_gone;
  };

  void client_left() {
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard lock(mutex_);
      gone_ = true;
      for (auto& p : parts_) {
        if (!p.done && p.on_gone) callbacks.push_back(std::move(p.on_gone));
      }
    }
    for (auto& c : callbacks) c();
  }

  // The client's stream begins with a note of each node that could not give its part.
  void begin_client_locked() {
    if (client_begun_) return;
    client_begun_ = true;
    client_->begin_stream(200, "text/event-stream");
    for (const auto& p : parts_) {
      if (p.error) client_->write(note(p));
    }
  }

  static std::string note(const PartState& p) {
    std::string text = p.node + ": " + error_text(*p.error);
    std::replace_if(
        text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    return ": " + text + "\n\n";
  }

  // Whole events go on (follow) or are held for the merge; the rest waits.
  void add_locked(PartState& p, std::string chunk) {
    p.pending += chunk;
    size_t end = p.pending.rfind("\n\n");
    if (end == std::string::npos) return;
    std::string whole = p.pending.substr(0, end + 2);
    p.pending.erase(0, end + 2);
    if (follow_) {
      begin_client_locked();
      client_->write(std::move(whole));
      return;
    }
    size_t at = 0;
    while (at < whole.size()) {
      size_t next = whole.find("\n\n", at) + 2;
      std::string event = whole.substr(at, next - at);
      p.held.emplace_back(event_time(event), std::move(event));
      at = next;
    }
  }

  void end_locked(PartState& p) {
    p.done = true;
    if (!p.pending.empty()) add_locked(p, "\n\n");
    if (p.error && client_begun_) client_->write(note(p));
    if (std::all_of(parts_.begin(), parts_.end(), [](const PartState& s) { return s.done; })) {
      finish_locked();
    }
  }

  static std::string error_text(const net::HttpResponse& r) {
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    if (!ec && v.is_object()) {
      if (const auto* e = v.as_object().if_contains("error"); e && e->is_string()) {
        return std::string(e->as_string());
      }
    }
    return "answered " + std::to_string(r.status);
  }

  void finish_locked() {
    finished_ = true;
    bool any =
        std::any_of(parts_.begin(), parts_.end(), [](const PartState& s) { return !s.error; });
    if (!any && !client_begun_) return client_->respond(std::move(*parts_.front().error));
    if (!follow_) {
      std::vector<std::pair<std::string, std::string>> events;
      for (auto& p : parts_) {
        for (auto& e : p.held) events.push_back(std::move(e));
      }
      std::stable_sort(events.begin(), events.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      size_t from = 0;
      if (tail_ && static_cast<size_t>(*tail_) < events.size()) {
        from = events.size() - static_cast<size_t>(*tail_);
      }
      std::string out;
      for (size_t i = from; i < events.size(); ++i) out += events[i].second;
      begin_client_locked();
      if (!out.empty()) client_->write(std::move(out));
    }
    begin_client_locked();
    client_->close();
  }

  std::mutex mutex_;
  std::shared_ptr<net::ResponseWriter> client_;
  const bool follow_;
  const std::optional<int64_t> tail_;
  std::vector<PartState> parts_;
  bool client_begun_ = false;
  bool finished_ = false;
  bool gone_ = false;
};

void Part::respond(net::HttpResponse response) { merge_->respond(index_, std::move(response)); }
void Part::begin_stream(int status, std::string, std::vector<net::Header>) {
  merge_->begin(index_, status);
}
bool Part::write(std::string chunk) { return merge_->write(index_, std::move(chunk)); }
void Part::close() { merge_->close(index_); }
bool Part::client_gone() const { return merge_->client_gone(); }
void Part::on_client_gone(std::function<void()> callback) {
  merge_->on_client_gone(index_, std::move(callback));
}

}  // namespace

std::vector<std::shared_ptr<net::ResponseWriter>> split_log(
    std::shared_ptr<net::ResponseWriter> client, const std::vector<std::string>& nodes, bool follow,
    std::optional<int64_t> tail) {
  auto merge = std::make_shared<Merge>(std::move(client), nodes, follow, tail);
  merge->take_client_gone();
  std::vector<std::shared_ptr<net::ResponseWriter>> parts;
  for (size_t i = 0; i < nodes.size(); ++i) parts.push_back(std::make_shared<Part>(merge, i));
  return parts;
}

}  // namespace mill::api
