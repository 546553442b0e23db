#include "image/layer_stream.h"

#include <algorithm>
#include <cstring>

namespace mill::image {

LayerStream::LayerStream(std::string digest, uint64_t size, size_t capacity)
    : check_(std::move(digest), size),
      ring_(new char[std::max<size_t>(capacity, 1)]),
      capacity_(std::max<size_t>(capacity, 1)) {}

Result<void> LayerStream::push(std::string_view chunk) {
  MILL_TRY(check_.update(chunk));
  std::unique_lock lock(mu_);
  while (!chunk.empty()) {
    cv_.wait(lock, [&] { return abandoned_ || draining_ || produced_ - consumed_ < capacity_; });
    if (abandoned_) {
      return make_error(ErrorCode::kConflict, "download of " + check_.digest() + " abandoned");
    }
    if (draining_) return {};  // checked above; nobody reads it any more
    const size_t at = produced_ % capacity_;
    const size_t n = std::min(
        {chunk.size(), capacity_ - static_cast<size_t>(produced_ - consumed_), capacity_ - at});
    // The consumer never touches the free part of the ring, so copy unlocked.
    lock.unlock();
    std::memcpy(ring_.get() + at, chunk.data(), n);
    lock.lock();
    produced_ += n;
    chunk.remove_prefix(n);
    cv_.notify_all();
  }
  return {};
}

void LayerStream::close(Result<void> download) {
  // push() has returned for good, so the check is the producer's alone here.
  Result<void> outcome = download ? check_.finish() : std::move(download);
  std::lock_guard lock(mu_);
  outcome_ = std::move(outcome);
  cv_.notify_all();
}

Result<std::string_view> LayerStream::next() {
  std::unique_lock lock(mu_);
  consumed_ += lent_;
  lent_ = 0;
  cv_.notify_all();
  cv_.wait(lock, [&] { return produced_ > consumed_ || outcome_.has_value(); });
  if (produced_ > consumed_) {
    const size_t at = consumed_ % capacity_;
    lent_ = std::min(static_cast<size_t>(produced_ - consumed_), capacity_ - at);
    return std::string_view(ring_.get() + at, lent_);
  }
  if (!*outcome_) return Unexpected(outcome_->error());
  return std::string_view();
}

void LayerStream::abandon() {
  std::lock_guard lock(mu_);
  abandoned_ = true;
  cv_.notify_all();
}

Result<void> LayerStream::finish() {
  std::unique_lock lock(mu_);
  draining_ = true;
  lent_ = 0;
  consumed_ = produced_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return outcome_.has_value(); });
  return *outcome_;
}

}  // namespace mill::image
