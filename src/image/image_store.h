#pragma once

// The node-local image cache the agent pulls through: resolves a reference with one
// manifest request (none when pulled by digest and present), downloads what is
// missing (layers in parallel) and keeps the store under a disk budget. Each layer
// is unpacked while it downloads (layer_stream.h): its compressed blob is never
// written to disk, and the unpacked tree is kept only once the blob's digest checks.
//
// On disk, under ROOT:
//   blobs/sha256/<hex>   manifests and configs (never layer blobs)
//   layers/<hex>/        one unpacked layer, named by its blob digest; it exists only
//                        when complete and verified (unpacked in tmp/, then renamed)
//   tmp/                 downloads and unpacks in progress; emptied by open()
//   images.json          references, images (config, layers, last use), layer sizes
//
// overlayfs takes all lower dirs in one mount option of at most 4096 bytes: each
// layer costs len(ROOT) + 73 bytes ("/layers/" + 64 hex + ':'), so with ROOT =
// /var/lib/mill/images (20 chars) about 44 layers fit; a runtime that chdirs to
// ROOT/layers and passes relative names fits 63.
//
// Thread-safe. Concurrent pulls share downloads of the same blob or layer.

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "common/result.h"
#include "image/blob_store.h"
#include "image/reference.h"
#include "image/registry_client.h"
#include "image/unpack.h"
#include "model/image.h"

namespace mill::image {

// Credentials for a registry host as written in the config ([registry."host"]), with
// secret references already resolved by the caller; nullopt: anonymous.
using CredentialLookup =
    std::function<std::optional<RegistryCredentials>(const std::string& registry_host)>;
// Unpacks one layer, read as it downloads, into an empty directory (image/unpack.h in
// production). It must pass on the reader's errors: a bad digest is one of them.
using LayerUnpacker =
    std::function<Result<void>(const LayerReader& read, const std::string& dest_dir)>;

struct ImageStoreOptions {
  std::string root;
  uint64_t disk_budget_bytes = 0;  // 0: unlimited
  int parallel_layers = 4;
  CredentialLookup credentials;
  LayerUnpacker unpack;  // required
  std::string ca_file;   // extra trusted CAs for every registry (tests)
  // A tag this store resolved against its registry less than this long ago is used
  // as it resolved then, with no request (0: every pull asks the registry). Digest
  // references never ask once present. Docker and Nomad never re-resolve a present
  // tag; this bounds how stale one can be while bursts of spawns skip the round trip.
  std::chrono::milliseconds tag_ttl{0};
};

struct Image {
  std::string reference;  // canonical: "docker.io/library/busybox:latest"
  std::string digest;     // of the manifest (or index) the reference resolved to
  model::ImageConfig config;
  std::vector<std::string> layer_dirs;  // unpacked, bottom layer first
  uint64_t size_bytes = 0;              // manifests + config + unpacked layers
};

struct ImageInfo {
  std::string reference;
  std::string digest;
  uint64_t size_bytes = 0;
  int64_t last_used_ms = 0;  // Unix time in milliseconds
  bool in_use = false;
};

class ImageStore {
 public:
  static Result<std::unique_ptr<ImageStore>> open(ImageStoreOptions options);

  // Errors name the image: "pull docker.io/library/x:1: registry ...: ...".
  Result<Image> pull(std::string_view reference);

  // In-use counts (in memory: after a restart the agent acquires again what runs).
  // gc() never evicts an acquired image.
  void acquire(const std::string& digest);
  void release(const std::string& digest);

  // Evicts least recently used images that are not in use, with the layers and blobs
  // no remaining image needs, until the store is under its budget. Returns bytes freed.
  Result<uint64_t> gc();

  std::vector<ImageInfo> list() const;

  struct Record {
    std::string repository;
    model::ImageConfig config;
    std::map<std::string, uint64_t> blobs;  // manifests and config: digest -> size
    std::vector<std::string> layers;        // layer blob digests, bottom first
    uint64_t use_seq = 0;                   // LRU order
    int64_t last_used_ms = 0;
  };

 private:
  explicit ImageStore(ImageStoreOptions options, BlobStore blobs);

  Result<Image> pull_ref(const Reference& ref);
  std::optional<Image> cached(const std::string& ref, const std::string& digest);
  std::shared_ptr<RegistryClient> client_for(const Reference& ref);
  Result<void> ensure_blob(RegistryClient& client, const std::string& repo,
                           const std::string& digest, uint64_t size);
  Result<void> ensure_layer(RegistryClient& client, const std::string& repo,
                            const std::string& digest, uint64_t size);
  Result<void> fetch_layers(RegistryClient& client, const std::string& repo,
                            const std::vector<std::pair<std::string, uint64_t>>& layers);
  Result<void> run_once(const std::string& key, const std::function<Result<void>()>& work);

  // Callers hold mu_.
  Image make_image_locked(const std::string& ref, const std::string& digest, Record& rec);
  uint64_t record_size_locked(const Record& rec) const;
  // kProcessCrash when only the LRU order changed (a cache hit): losing that to a
  // power cut (or a crash within kLruSaveInterval) costs nothing, and it keeps an
  // fsync off every cached spawn.
  Result<void> save_locked(Durability durability = Durability::kPowerLoss);
  Result<void> load_locked();
  uint64_t usage_locked() const;
  uint64_t sweep_locked();  // removes unreferenced, unpinned layers and blobs
  uint64_t gc_locked(const std::string& keep);
  void pin_locked(const std::vector<std::string>& digests, int delta);
  std::string layer_dir(const std::string& digest) const;

  ImageStoreOptions options_;
  BlobStore blobs_;

  mutable std::mutex mu_;
  std::map<std::string, std::string> refs_;  // canonical reference -> image digest
  // canonical tag reference -> when the registry last resolved it (not persisted)
  std::map<std::string, std::chrono::steady_clock::time_point> resolved_at_;
  std::map<std::string, Record> images_;    // image digest -> record
  std::map<std::string, uint64_t> layers_;  // complete layer dirs: digest -> bytes
  std::map<std::string, int> in_use_;       // image digest -> acquire count
  std::map<std::string, int> pinned_;       // digests a pull in progress needs
  std::map<std::string, std::shared_future<Result<void>>> inflight_;
  std::map<std::string, std::shared_ptr<RegistryClient>> clients_;
  uint64_t next_seq_ = 1;
  static constexpr std::chrono::seconds kLruSaveInterval{5};
  std::chrono::steady_clock::time_point lru_saved_at_{};  // last save for a cache hit
};

}  // namespace mill::image
