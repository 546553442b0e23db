#pragma once

// Carries a layer blob from the thread that downloads it to the thread that unpacks
// it, so a layer is unpacked while it arrives and its compressed bytes never touch
// the disk. The blob is checked on the way (BlobCheck): its size as bytes come, its
// digest at the end. The unpacker sees a bad digest as a failed read at the end of
// the blob; when it stops reading early (a tar ends before the blob's padding does),
// finish() reads the rest and gives the verdict. Either way, the caller keeps the
// unpacked layer only when finish() succeeds.
//
// At most `capacity` bytes wait in between (one ring buffer, allocated once): the
// download slows down to the unpack's pace instead of piling up in memory.
//
// One producer thread (push, close) and one consumer thread (next, abandon, finish).

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "image/blob_store.h"

namespace mill::image {

class LayerStream {
 public:
  LayerStream(std::string digest, uint64_t size, size_t capacity = 1 << 20);
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;

  // Producer. Blocks while the buffer is full. Fails when the bytes pass the blob's
  // size, or once the consumer abandoned the stream (which ends the download).
  Result<void> push(std::string_view chunk);
  // Producer: the download is over, with this outcome.
  void close(Result<void> download);

  // Consumer: the next bytes, valid until the next call; empty at the end of a
  // download whose bytes match the digest. Otherwise the download's error, or the
  // digest mismatch, in place of the end.
  Result<std::string_view> next();
  // Consumer: no more reading (the unpack failed); push() fails from now on.
  void abandon();
  // Consumer, once done reading: waits for the download to end, checking whatever
  // the consumer left unread, and returns its outcome with the digest check.
  Result<void> finish();

 private:
  BlobCheck check_;
  std::unique_ptr<char[]> ring_;
  const size_t capacity_;

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t produced_ = 0;  // bytes pushed into the ring, ever
  uint64_t consumed_ = 0;  // bytes the consumer is done with, ever
  size_t lent_ = 0;        // bytes handed out by the last next()
  bool draining_ = false;  // the consumer stopped reading: push() only checks
  bool abandoned_ = false;
  std::optional<Result<void>> outcome_;  // set by close(): download + digest
};

}  // namespace mill::image
