// A net::ResponseWriter that records what it is given, for unit tests of what answers
// through one (a long poll, a log stream) without an HTTP server. leave() plays a
// client that disconnects.

#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>

#include "net/http.h"

namespace mill::testing {

class RecordingWriter final : public net::ResponseWriter {
 public:
  void respond(net::HttpResponse response) override {
    std::lock_guard lock(mu_);
    if (done_) return;
    status_ = response.status;
    body_ = std::move(response.body);
    done_ = responded_ = true;
    cv_.notify_all();
  }
  void begin_stream(int status, std::string content_type, std::vector<net::Header>) override {
    std::lock_guard lock(mu_);
    if (done_ || status_ != 0) return;
    status_ = status;
    content_type_ = std::move(content_type);
    cv_.notify_all();
  }
  bool write(std::string chunk) override {
    std::lock_guard lock(mu_);
    if (gone_ || done_) return false;
    body_ += chunk;
    cv_.notify_all();
    return true;
  }
  void close() override {
    std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  bool client_gone() const override {
    std::lock_guard lock(mu_);
    return gone_;
  }
  void on_client_gone(std::function<void()> callback) override {
    {
      std::lock_guard lock(mu_);
      if (!gone_) {
        on_gone_ = std::move(callback);
        return;
      }
    }
    callback();
  }

  // The client disconnects: the gone callback runs here, as an I/O thread would.
  void leave() {
    std::function<void()> callback;
    {
      std::lock_guard lock(mu_);
      gone_ = true;
      if (!done_) callback = std::move(on_gone_);
    }
    if (callback) callback();
  }

  // What a wait() predicate sees.
  struct View {
    int status;  // 0 until the answer or the stream began
    const std::string& body;
    bool done;  // answered whole, or the stream closed
  };
  // Waits (bounded, real time) until `pred` holds.
  bool wait(const std::function<bool(const View&)>& pred,
            std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return pred(View{status_, body_, done_}); });
  }
  // A short real wait when checking that something does NOT happen.
  bool wait_done(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return wait([](const View& v) { return v.done; }, limit);
  }
  bool wait_body_has(const std::string& text) {
    return wait([&](const View& v) { return v.body.find(text) != std::string::npos; });
  }

  int status() const {
    std::lock_guard lock(mu_);
    return status_;
  }
  std::string body() const {
    std::lock_guard lock(mu_);
    return body_;
  }
  std::string content_type() const {
    std::lock_guard lock(mu_);
    return content_type_;
  }
  bool done() const {
    std::lock_guard lock(mu_);
    return done_;
  }
  bool responded() const {  // a whole answer, not a stream
    std::lock_guard lock(mu_);
    return responded_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int status_ = 0;
  std::string body_;
  bool done_ = false;
  std::string content_type_;
  bool responded_ = false;
  bool gone_ = false;
  std::function<void()> on_gone_;
};

}  // namespace mill::testing
