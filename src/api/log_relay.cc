#include "api/log_relay.h"

#include "api/responses.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "model/units.h"

namespace mill::api {

namespace {

constexpr auto kFar = std::chrono::hours(1);

net::HttpResponse requests_answer(const model::NodeRequests& requests) {
  return json_text_response(200, model::encode(requests));
}

std::string log_name(const model::LogRequest& r) {
  return r.service.empty() ? r.alloc_id : r.service;
}

}  // namespace

LogRelay::LogRelay(const Clock& clock, LogRelayOptions options) : clock_(clock), options_(options) {
  thread_ = std::thread([this] { loop(); });
}

LogRelay::~LogRelay() { stop(); }

void LogRelay::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      auto now = clock_.now();
      for (auto& [name, node] : nodes_) answer_poll_locked(node, now);
      while (!streams_.empty()) {
        end_stream_locked(streams_.begin(), 503, "the server is stopping");
      }
    }
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool LogRelay::attached_locked(const Node& node, SystemTime now) const {
  return node.poller || now - node.last_seen < options_.attach_grace;
}

bool LogRelay::attached(const std::string& node) const {
  std::lock_guard lock(mutex_);
  auto it = nodes_.find(node);
  return it != nodes_.end() && attached_locked(it->second, clock_.now());
}

void LogRelay::stream(const std::string& node, model::LogRequest request,
                      std::shared_ptr<net::ResponseWriter> client) {
  auto id = crypto::random_hex(16);
  if (!id) return client->respond(error_response(500, id.error().message));
  request.id = *id;
  {
    std::lock_guard lock(mutex_);
    auto now = clock_.now();
    auto n = nodes_.find(node);
    if (stopping_ || n == nodes_.end() || !attached_locked(n->second, now)) {
      return client->respond(error_response(503, "the log of " + log_name(request) + " is on " +
                                                     node + ", whose agent is not connected"));
    }
    streams_.emplace(request.id, Stream{node, "", client, false, now + options_.start_timeout});
    n->second.queued.push_back(std::move(request));
    if (n->second.poller) answer_poll_locked(n->second, now);
    changed_ = true;
  }
  wake_.notify_all();
  // Inline when the client has already gone: client_left takes the lock itself.
  client->on_client_gone([this, id = *id] { client_left(id); });
}

void LogRelay::answer_poll_locked(Node& node, SystemTime now) {
  if (!node.poller) return;
  model::NodeRequests requests;
  for (auto& r : node.queued) {
    if (auto it = streams_.find(r.id); it != streams_.end()) it->second.session = node.session;
    requests.logs.push_back(std::move(r));
  }
  node.queued.clear();
  requests.cancel = std::move(node.cancel);
  node.cancel.clear();
  node.poller->respond(requests_answer(requests));
  node.poller.reset();
  node.last_seen = now;
}

void LogRelay::poll(const model::RequestsQuery& query, std::shared_ptr<net::ResponseWriter> agent) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return agent->respond(error_response(503, "the server is stopping"));
    auto now = clock_.now();
    Node& node = nodes_[query.node];
    if (node.session != query.session) {
      // Another agent process: what the old one took will never come.
      for (auto it = streams_.begin(); it != streams_.end();) {
        auto next = std::next(it);
        if (it->second.node == query.node && !it->second.session.empty()) {
          end_stream_locked(it, 503, query.node + "'s agent restarted");
        }
        it = next;
      }
      node.cancel.clear();
      node.session = query.session;
    }
    answer_poll_locked(node, now);  // an older poll of the node's (replaced)
    node.poller = agent;
    node.poll_until = now + query.wait;
    node.last_seen = now;
    if (!node.queued.empty() || !node.cancel.empty() || query.wait.count() <= 0) {
      answer_poll_locked(node, now);
    }
    changed_ = true;
  }
  wake_.notify_all();
  agent->on_client_gone([this, node = query.node, raw = agent.get()] { poller_left(node, raw); });
}

void LogRelay::poller_left(const std::string& name, const net::ResponseWriter* poller) {
  std::lock_guard lock(mutex_);
  auto it = nodes_.find(name);
  if (it == nodes_.end() || it->second.poller.get() != poller) return;
  it->second.poller.reset();
  it->second.last_seen = clock_.now();
  changed_ = true;
  wake_.notify_all();
}

Result<model::LogChunkAnswer> LogRelay::chunk(model::LogChunk chunk) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(chunk.request);
  if (it == streams_.end()) return model::LogChunkAnswer{false};
  Stream& s = it->second;
  if (s.node != chunk.node || s.session.empty()) {
    return make_error(ErrorCode::kNotFound,
                      "no log request " + chunk.request + " for " + chunk.node);
  }
  if (s.client->client_gone()) {
    streams_.erase(it);
    return model::LogChunkAnswer{false};
  }
  if (!s.begun) {
    if (chunk.status == 0) {
      return make_error(ErrorCode::kInvalidArgument, "a log's first chunk has a status");
    }
    s.begun = true;
    if (chunk.whole) {
      net::HttpResponse r;
      r.status = chunk.status;
      r.content_type = std::move(chunk.content_type);
      r.body = std::move(chunk.data);
      s.client->respond(std::move(r));
      streams_.erase(it);
      return model::LogChunkAnswer{false};
    }
    s.client->begin_stream(chunk.status, std::move(chunk.content_type));
  } else if (chunk.status != 0) {
    return make_error(ErrorCode::kInvalidArgument, "log " + chunk.request + " has begun already");
  }
  bool more = true;
  if (!chunk.data.empty()) more = s.client->write(std::move(chunk.data));
  if (chunk.end || !more) {
    s.client->close();
    streams_.erase(it);
    return model::LogChunkAnswer{false};
  }
  return model::LogChunkAnswer{true};
}

void LogRelay::end_stream_locked(std::map<std::string, Stream>::iterator it, int status,
                                 const std::string& why) {
  Stream& s = it->second;
  if (s.begun) {
    s.client->close();
  } else {
    s.client->respond(error_response(status, why));
  }
  if (!s.session.empty()) {
    // The node may still be sending it: tell it to stop.
    if (auto n = nodes_.find(s.node); n != nodes_.end() && n->second.session == s.session) {
      n->second.cancel.push_back(it->first);
      answer_poll_locked(n->second, clock_.now());
    }
  } else if (auto n = nodes_.find(s.node); n != nodes_.end()) {
    auto& q = n->second.queued;
    std::erase_if(q, [&](const model::LogRequest& r) { return r.id == it->first; });
  }
  streams_.erase(it);
}

void LogRelay::client_left(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  end_stream_locked(it, 499, "the client left");
}

void LogRelay::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto now = clock_.now();
    SystemTime next = now + kFar;
    for (auto& [name, node] : nodes_) {
      if (!node.poller) continue;
      if (node.poll_until <= now) {
        answer_poll_locked(node, now);
      } else {
        next = std::min(next, node.poll_until);
      }
    }
    for (auto it = streams_.begin(); it != streams_.end();) {
      auto current = it++;
      Stream& s = current->second;
      Node& node = nodes_[s.node];
      if (!attached_locked(node, now)) {
        log::warn("logs: " + s.node + "'s agent stopped polling; ending its log streams");
        end_stream_locked(current, 503, s.node + "'s agent is not connected");
        continue;
      }
      if (!s.begun && s.start_by <= now) {
        end_stream_locked(current, 504,
                          s.node + " did not answer for the log within " +
                              model::format_duration(options_.start_timeout));
        continue;
      }
      if (!s.begun) next = std::min(next, s.start_by);
      if (!node.poller) next = std::min(next, node.last_seen + options_.attach_grace);
    }
    clock_.wait_until(wake_, lock, next, [this] { return stopping_ || changed_; });
    changed_ = false;
  }
}

}  // namespace mill::api
