#include "agent/log_uplink.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <random>

#include "common/log.h"

namespace mill::agent {

namespace {

// This agent process's session: the control plane ends the streams of an older one.
std::string new_session() {
  std::random_device random;
  std::uniform_int_distribution<uint64_t> any;
  uint64_t n = any(random);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i, n >>= 4) out += kHex[n & 15];
  return out;
}

}  // namespace

// Every stream's unsent part. Its writers and the sender share it; it outlives the
// uplink (a log service may still hold a writer), and once closed takes nothing more.
struct LogUplink::Outbox {
  struct Stream {
    int status = 0;  // set by begin_stream / respond; sent with the first chunk
    std::string content_type;
    bool whole = false;
    bool sent_first = false;
    std::string data;
    bool end = false;
    bool gone = false;  // the client left (or the uplink stopped): take no more
    std::function<void()> on_gone;
  };

  std::mutex mutex;
  std::condition_variable wake;
  std::map<std::string, Stream> streams;
  bool closed = false;
  size_t max_queued = 0;

  bool sendable(const Stream& s) const {
    return s.status != 0 && (!s.sent_first || !s.data.empty() || s.end);
  }
  // Marks the stream gone and drops it; its callback runs after the lock is released.
  std::function<void()> drop(std::map<std::string, Stream>::iterator it) {
    std::function<void()> callback;
    if (!it->second.end) callback = std::move(it->second.on_gone);
    streams.erase(it);
    return callback;
  }
  std::function<void()> drop(const std::string& id) {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : drop(it);
  }
};

namespace {

// What the log service writes to: every call only queues (cheap, any thread).
class QueueWriter final : public net::ResponseWriter {
 public:
  QueueWriter(std::shared_ptr<LogUplink::Outbox> outbox, std::string id)
      : outbox_(std::move(outbox)), id_(std::move(id)) {}

  void respond(net::HttpResponse response) override {
    update([&](LogUplink::Outbox::Stream& s) {
      if (s.status != 0) return;
      s.status = response.status;
      s.content_type = std::move(response.content_type);
      s.data = std::move(response.body);
      s.whole = s.end = true;
    });
  }
  void begin_stream(int status, std::string content_type, std::vector<net::Header>) override {
    update([&](LogUplink::Outbox::Stream& s) {
      if (s.status != 0) return;
      s.status = status;
      s.content_type = std::move(content_type);
    });
  }
  bool write(std::string chunk) override {
    bool taken = false;
    std::function<void()> callback;
    {
      std::lock_guard lock(outbox_->mutex);
      auto it = outbox_->streams.find(id_);
      if (it == outbox_->streams.end() || it->second.end) return false;
      it->second.data += chunk;
      taken = true;
      if (it->second.data.size() > outbox_->max_queued) {
        log::warn("agent: log " + id_ + ": the control plane is not keeping up; cutting it");
        callback = outbox_->drop(it);
        taken = false;
      }
    }
    outbox_->wake.notify_all();
    if (callback) callback();
    return taken;
  }
  void close() override {
    update([](LogUplink::Outbox::Stream& s) {
      if (s.status == 0) s.status = 204, s.whole = true;  // closed before it began
      s.end = true;
    });
  }
  bool client_gone() const override {
    std::lock_guard lock(outbox_->mutex);
    return !outbox_->streams.contains(id_);
  }
  void on_client_gone(std::function<void()> callback) override {
    {
      std::lock_guard lock(outbox_->mutex);
      auto it = outbox_->streams.find(id_);
      if (it != outbox_->streams.end()) {
        it->second.on_gone = std::move(callback);
        return;
      }
    }
    if (callback) callback();
  }

 private:
  template <class F>
  void update(F&& f) {
    {
      std::lock_guard lock(outbox_->mutex);
      auto it = outbox_->streams.find(id_);
      if (it == outbox_->streams.end() || it->second.end) return;
      f(it->second);
    }
    outbox_->wake.notify_all();
  }

  std::shared_ptr<LogUplink::Outbox> outbox_;
  std::string id_;
};

}  // namespace

LogUplink::LogUplink(NodeClient& client, std::string node_id, Serve serve, LogUplinkOptions options)
    : client_(client),
      node_(std::move(node_id)),
      serve_(std::move(serve)),
      options_(options),
      session_(new_session()),
      outbox_(std::make_shared<Outbox>()) {
  outbox_->max_queued = options_.max_queued_bytes;
  poller_ = std::thread([this] { poll_loop(); });
  sender_ = std::thread([this] { send_loop(); });
}

LogUplink::~LogUplink() { stop(); }

void LogUplink::stop() {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(outbox_->mutex);
    if (!outbox_->closed) {
      outbox_->closed = true;
      while (!outbox_->streams.empty()) {
        if (auto c = outbox_->drop(outbox_->streams.begin())) callbacks.push_back(std::move(c));
      }
    }
  }
  outbox_->wake.notify_all();
  for (auto& c : callbacks) c();
  if (sender_.joinable()) sender_.join();
  if (poller_.joinable()) poller_.join();
}

void LogUplink::poll_loop() {
  bool failing = false;
  for (;;) {
    {
      std::lock_guard lock(outbox_->mutex);
      if (outbox_->closed) return;
    }
    auto asked = client_.requests(model::RequestsQuery{node_, session_, options_.wait});
    if (!asked) {
      if (!failing) log::warn("agent: asking for log requests failed: " + asked.error().message);
      failing = true;
      std::unique_lock lock(outbox_->mutex);
      outbox_->wake.wait_for(lock, std::chrono::seconds(1), [this] { return outbox_->closed; });
      continue;
    }
    if (failing) log::info("agent: log requests flowing again");
    failing = false;
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard lock(outbox_->mutex);
      if (outbox_->closed) return;
      for (const auto& id : asked->cancel) {
        if (auto c = outbox_->drop(id)) callbacks.push_back(std::move(c));
      }
      for (const auto& r : asked->logs) outbox_->streams.try_emplace(r.id);
    }
    for (auto& c : callbacks) c();
    for (const auto& r : asked->logs) serve_(r, std::make_shared<QueueWriter>(outbox_, r.id));
  }
}

void LogUplink::send_loop() {
  std::unique_lock lock(outbox_->mutex);
  for (;;) {
    outbox_->wake.wait(lock, [this] {
      if (outbox_->closed) return true;
      for (const auto& [id, s] : outbox_->streams) {
        if (outbox_->sendable(s)) return true;
      }
      return false;
    });
    if (outbox_->closed) return;
    // One piece of each stream that has something, in turn, so a long log does not
    // hold up a short one.
    std::vector<model::LogChunk> chunks;
    for (auto& [id, s] : outbox_->streams) {
      if (!outbox_->sendable(s)) continue;
      model::LogChunk c;
      c.node = node_;
      c.request = id;
      if (!s.sent_first) {
        c.status = s.status;
        c.content_type = s.content_type;
        c.whole = s.whole;
        s.sent_first = true;
      }
      if (c.whole || s.data.size() <= options_.chunk_bytes) {
        c.data = std::move(s.data);
        s.data.clear();
        c.end = s.end;
      } else {
        c.data = s.data.substr(0, options_.chunk_bytes);
        s.data.erase(0, options_.chunk_bytes);
      }
      chunks.push_back(std::move(c));
    }
    lock.unlock();
    std::vector<std::function<void()>> callbacks;
    std::vector<std::pair<std::string, bool>> outcomes;  // id, more
    for (const auto& c : chunks) {
      auto answer = client_.send_log(c);
      if (!answer) log::warn("agent: sending log " + c.request + ": " + answer.error().message);
      outcomes.emplace_back(c.request, answer && answer->more && !c.end);
    }
    lock.lock();
    for (const auto& [id, more] : outcomes) {
      auto it = outbox_->streams.find(id);
      if (it == outbox_->streams.end() || more) continue;
      if (it->second.end && it->second.data.empty()) {
        outbox_->streams.erase(it);  // all sent
      } else if (auto c = outbox_->drop(it)) {
        callbacks.push_back(std::move(c));
      }
    }
    if (!callbacks.empty()) {
      lock.unlock();
      for (auto& c : callbacks) c();
      lock.lock();
    }
  }
}

}  // namespace mill::agent
