#pragma once

// Content-addressed blobs on disk: ROOT/blobs/sha256/<hex>. A blob appears under its
// name only once its bytes have been checked against the name: writes go to a temp
// file in ROOT/tmp, are hashed while written, and are fsynced and renamed into place
// by commit() only when size and digest match. So a present blob is always whole.
//
// Thread-safe: distinct writers may run at once; two writers of one digest both end
// with the same, verified file.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "crypto/sha256.h"

namespace mill::image {

class BlobWriter;

// Checks a blob while it streams by: its size against its descriptor's as bytes come,
// and its sha256 against its name at the end. A BlobWriter checks what it writes with
// one; a layer unpacked while it downloads (layer_stream.h) is checked with one alone.
class BlobCheck {
 public:
  BlobCheck(std::string digest, uint64_t expected_size);

  // kInvalidArgument as soon as the bytes pass the expected size.
  Result<void> update(std::string_view chunk);
  // kInvalidArgument when the size falls short or the digest does not match:
  // "blob sha256:<want> does not match its digest (got sha256:<got>)". Call once.
  Result<void> finish();

  const std::string& digest() const { return digest_; }

 private:
  std::string digest_;
  uint64_t expected_size_;
  uint64_t seen_ = 0;
  crypto::Sha256 hash_;
};

class BlobStore {
 public:
  // Creates ROOT/blobs/sha256 and ROOT/tmp as needed.
  static Result<BlobStore> open(std::string root);

  bool has(std::string_view digest) const;
  std::string path(std::string_view digest) const;
  Result<uint64_t> size(std::string_view digest) const;
  // Removing an absent blob is not an error.
  Result<void> remove(std::string_view digest);

  // Starts writing the blob `digest` (sha256:<hex>) of `expected_size` bytes.
  Result<std::unique_ptr<BlobWriter>> begin(std::string_view digest, uint64_t expected_size);
  // Writes a whole in-memory blob (manifests, configs) through begin/commit.
  Result<void> put(std::string_view digest, std::string_view bytes);

  const std::string& root() const { return root_; }

 private:
  explicit BlobStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

// One blob being written. Destroying it without a successful commit() removes the
// temp file, so an interrupted or failed download leaves nothing behind.
class BlobWriter {
 public:
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // Appends bytes; kInvalidArgument as soon as they pass the expected size.
  Result<void> write(std::string_view chunk);
  // Checks size and digest (BlobCheck::finish), fsyncs, renames into place. On a
  // mismatch the temp file is removed.
  Result<void> commit();

 private:
  friend class BlobStore;
  BlobWriter(int fd, std::string tmp_path, std::string final_path, std::string digest,
             uint64_t expected_size);
  void discard();

  int fd_;
  std::string tmp_path_;
  std::string final_path_;
  BlobCheck check_;
};

}  // namespace mill::image
