#include "image/image_store.h"

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "common/files.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "image/layer_stream.h"
#include "image/manifest.h"

namespace mill::image {
namespace {

namespace fs = std::filesystem;

// Bytes an unpacked layer takes: regular files' and symlinks' sizes (directories
// and metadata are small next to them).
uint64_t tree_bytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
       !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
      total += static_cast<uint64_t>(st.st_size);
    }
  }
  return total;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ImageStore::ImageStore(ImageStoreOptions options, BlobStore blobs)
    : options_(std::move(options)), blobs_(std::move(blobs)) {}

Result<std::unique_ptr<ImageStore>> ImageStore::open(ImageStoreOptions options) {
  if (options.root.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "image store: no root directory");
  }
  if (!options.unpack) {
    return make_error(ErrorCode::kInvalidArgument, "image store: no layer unpacker");
  }
  if (options.parallel_layers < 1) options.parallel_layers = 1;
  // Whatever was in progress when the last process died is garbage now.
  std::error_code ec;
  fs::remove_all(options.root + "/tmp", ec);
  fs::create_directories(options.root + "/layers", ec);
  if (ec) {
    return make_error(ErrorCode::kIo,
                      "image store: cannot create " + options.root + "/layers: " + ec.message());
  }
  BlobStore blobs = MILL_TRY(BlobStore::open(options.root));
  std::unique_ptr<ImageStore> store(new ImageStore(std::move(options), std::move(blobs)));
  std::lock_guard lock(store->mu_);
  MILL_TRY(store->load_locked());
  // Layer dirs no record knows (a crash between unpack and save) and blobs no image
  // needs are dropped, so the budget counts everything on disk.
  for (const auto& entry : fs::directory_iterator(store->options_.root + "/layers", ec)) {
    std::string digest = "sha256:" + entry.path().filename().string();
    if (!store->layers_.contains(digest)) fs::remove_all(entry.path(), ec);
  }
  store->sweep_locked();
  return store;
}

std::string ImageStore::layer_dir(const std::string& digest) const {
  return options_.root + "/layers/" + digest.substr(7);
}

std::shared_ptr<RegistryClient> ImageStore::client_for(const Reference& ref) {
  RegistryCredentials creds;
  if (options_.credentials) {
    if (auto c = options_.credentials(ref.registry)) creds = *c;
  }
  std::lock_guard lock(mu_);
  auto& client = clients_[ref.registry];
  const auto& old = client ? client->options().credentials : RegistryCredentials{};
  if (!client || old.username != creds.username || old.password != creds.password ||
      old.insecure != creds.insecure) {
    RegistryClientOptions o;
    o.registry = ref.registry;
    o.endpoint = ref.endpoint();
    o.credentials = creds;
    o.ca_file = options_.ca_file;
    client = std::make_shared<RegistryClient>(std::move(o));
  }
  return client;
}

Result<Image> ImageStore::pull(std::string_view reference) {
  auto ref = parse_reference(reference);
  if (!ref) return Unexpected(ref.error());
  auto image = pull_ref(*ref);
  if (!image) {
    std::lock_guard lock(mu_);
    sweep_locked();  // what a failed pull fetched and nothing else needs
    return make_error(image.error().code, "pull " + ref->str() + ": " + image.error().message);
  }
  return image;
}

std::optional<Image> ImageStore::cached(const std::string& ref, const std::string& digest) {
  std::lock_guard lock(mu_);
  auto it = images_.find(digest);
  if (it == images_.end()) return std::nullopt;
  for (const auto& layer : it->second.layers) {
    struct stat st {};
    if (!layers_.contains(layer) || ::stat(layer_dir(layer).c_str(), &st) != 0) return std::nullopt;
  }
  it->second.use_seq = next_seq_++;
  it->second.last_used_ms = now_ms();
  std::string& known = refs_[ref];  // "" when the name is new
  const bool new_ref = known != digest;
  known = digest;
  // A hit that only moves the LRU order is saved at most every few seconds (and with
  // the next pull's save): a burst of spawns then writes images.json once, not each.
  const auto now = std::chrono::steady_clock::now();
  if (new_ref || now - lru_saved_at_ >= kLruSaveInterval) {
    lru_saved_at_ = now;
    if (auto saved = save_locked(Durability::kProcessCrash); !saved) {
      log::warn("image store: " + saved.error().message);
    }
  }
  return make_image_locked(ref, digest, it->second);
}

Image ImageStore::make_image_locked(const std::string& ref, const std::string& digest,
                                    Record& rec) {
  Image out;
  out.reference = ref;
  out.digest = digest;
  out.config = rec.config;
  for (const auto& layer : rec.layers) out.layer_dirs.push_back(layer_dir(layer));
  out.size_bytes = record_size_locked(rec);
  return out;
}

Result<Image> ImageStore::pull_ref(const Reference& ref) {
  const std::string name = ref.str();
  if (!ref.digest.empty()) {
    if (auto image = cached(name, ref.digest)) return *image;
  }
  const auto now = std::chrono::steady_clock::now();
  if (ref.digest.empty() && options_.tag_ttl.count() > 0) {
    std::string digest;
    {
      std::lock_guard lock(mu_);
      auto at = resolved_at_.find(name);
      auto known = refs_.find(name);
      if (at != resolved_at_.end() && known != refs_.end() && now - at->second < options_.tag_ttl) {
        digest = known->second;
      }
    }
    if (!digest.empty()) {
      if (auto image = cached(name, digest)) return *image;
    }
  }
  auto client = client_for(ref);
  auto top = MILL_TRY(client->get_manifest(ref.repository, ref.manifest_reference()));
  if (ref.digest.empty()) {
    std::lock_guard lock(mu_);
    resolved_at_[name] = now;
  }
  if (auto image = cached(name, top.digest)) return *image;

  std::vector<FetchedManifest> manifests;
  auto doc = MILL_TRY(parse_manifest(top.bytes, top.media_type));
  manifests.push_back(std::move(top));
  if (const Index* index = std::get_if<Index>(&doc)) {
    Descriptor chosen = MILL_TRY(select_platform(*index, "linux", "amd64"));
    auto child = MILL_TRY(client->get_manifest(ref.repository, chosen.digest));
    doc = MILL_TRY(parse_manifest(child.bytes, child.media_type));
    if (!std::holds_alternative<Manifest>(doc)) {
      return make_error(ErrorCode::kInvalidArgument, "the index's linux/amd64 entry is an index");
    }
    manifests.push_back(std::move(child));
  }
  const Manifest& manifest = std::get<Manifest>(doc);
  if (manifest.config.size > kMaxConfigBytes) {
    return make_error(ErrorCode::kTooLarge, "image config is absurdly large");
  }

  Record rec;
  rec.repository = ref.repository;
  std::vector<std::string> pins{manifest.config.digest};
  std::vector<std::pair<std::string, uint64_t>> layers;
  for (const auto& m : manifests) pins.push_back(m.digest);
  for (const auto& l : manifest.layers) {
    pins.push_back(l.digest);
    rec.layers.push_back(l.digest);
    layers.emplace_back(l.digest, l.size);
  }
  {
    std::lock_guard lock(mu_);
    pin_locked(pins, +1);
  }
  struct Unpin {
    ImageStore* store;
    const std::vector<std::string>& pins;
    ~Unpin() {
      std::lock_guard lock(store->mu_);
      store->pin_locked(pins, -1);
    }
  } unpin{this, pins};

  MILL_TRY(ensure_blob(*client, ref.repository, manifest.config.digest, manifest.config.size));
  std::string config_bytes = MILL_TRY(read_file(blobs_.path(manifest.config.digest)));
  rec.config = MILL_TRY(parse_image_config(config_bytes));
  rec.blobs[manifest.config.digest] = manifest.config.size;
  MILL_TRY(fetch_layers(*client, ref.repository, layers));
  for (const auto& m : manifests) {
    if (!blobs_.has(m.digest)) MILL_TRY(blobs_.put(m.digest, m.bytes));
    rec.blobs[m.digest] = m.bytes.size();
  }

  const std::string digest = manifests.front().digest;
  std::lock_guard lock(mu_);
  rec.use_seq = next_seq_++;
  rec.last_used_ms = now_ms();
  auto& stored = images_[digest] = std::move(rec);
  refs_[name] = digest;
  MILL_TRY(save_locked());
  Image image = make_image_locked(name, digest, stored);
  gc_locked(digest);
  return image;
}

Result<void> ImageStore::run_once(const std::string& key,
                                  const std::function<Result<void>()>& work) {
  std::promise<Result<void>> promise;
  {
    std::unique_lock lock(mu_);
    if (auto it = inflight_.find(key); it != inflight_.end()) {
      auto shared = it->second;
      lock.unlock();
      return shared.get();
    }
    inflight_[key] = promise.get_future().share();
  }
  Result<void> result = work();
  {
    std::lock_guard lock(mu_);
    inflight_.erase(key);
  }
  promise.set_value(result);
  return result;
}

Result<void> ImageStore::ensure_blob(RegistryClient& client, const std::string& repo,
                                     const std::string& digest, uint64_t size) {
  return run_once(digest, [&]() -> Result<void> {
    if (blobs_.has(digest)) return {};
    auto writer = MILL_TRY(blobs_.begin(digest, size));
    MILL_TRY(client.get_blob(repo, digest,
                             [&](std::string_view chunk) { return writer->write(chunk); }));
    return writer->commit();
  });
}

Result<void> ImageStore::ensure_layer(RegistryClient& client, const std::string& repo,
                                      const std::string& digest, uint64_t size) {
  return run_once("layer:" + digest, [&]() -> Result<void> {
    const std::string dir = layer_dir(digest);
    {
      std::lock_guard lock(mu_);
      struct stat st {};
      if (layers_.contains(digest) && ::stat(dir.c_str(), &st) == 0) return {};
    }
    std::string tmp = options_.root + "/tmp/layer-" + digest.substr(7, 16) + "-" +
                      MILL_TRY(crypto::random_hex(6));
    std::error_code ec;
    fs::create_directories(tmp, ec);
    if (ec) return make_error(ErrorCode::kIo, "cannot create " + tmp + ": " + ec.message());
    // Download on one thread, unpack on this one, the blob checked in between. Nothing
    // may throw past here with the download thread running.
    LayerStream stream(digest, size);
    auto guarded = [](auto&& work) -> Result<void> {
      try {
        return work();
      } catch (const std::exception& e) {
        return make_error(ErrorCode::kIo, e.what());
      }
    };
    std::thread download;
    try {
      download = std::thread([&] {
        stream.close(guarded([&] {
          return client.get_blob(repo, digest,
                                 [&](std::string_view chunk) { return stream.push(chunk); });
        }));
      });
    } catch (const std::exception& e) {
      fs::remove_all(tmp, ec);
      return make_error(ErrorCode::kIo, "layer " + digest + ": download thread: " + e.what());
    }
    Result<void> unpacked =
        guarded([&] { return options_.unpack([&] { return stream.next(); }, tmp); });
    if (!unpacked) stream.abandon();
    Result<void> verified = stream.finish();
    download.join();
    if (!unpacked || !verified) {
      fs::remove_all(tmp, ec);
      const Error& why = unpacked ? verified.error() : unpacked.error();
      return make_error(why.code, "layer " + digest + ": " + why.message);
    }
    uint64_t bytes = tree_bytes(tmp);
    fs::remove_all(dir, ec);
    if (::rename(tmp.c_str(), dir.c_str()) != 0) {
      fs::remove_all(tmp, ec);
      return make_error(ErrorCode::kIo, "cannot rename layer into " + dir);
    }
    std::lock_guard lock(mu_);
    layers_[digest] = bytes;
    return {};
  });
}

Result<void> ImageStore::fetch_layers(RegistryClient& client, const std::string& repo,
                                      const std::vector<std::pair<std::string, uint64_t>>& layers) {
  std::vector<Result<void>> results(layers.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next++) < layers.size();) {
      results[i] = ensure_layer(client, repo, layers[i].first, layers[i].second);
    }
  };
  size_t extra = std::min<size_t>(static_cast<size_t>(options_.parallel_layers), layers.size());
  std::vector<std::thread> threads;
  for (size_t i = 1; i < extra; ++i) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  for (auto& r : results) {
    if (!r) return r;
  }
  return {};
}

void ImageStore::acquire(const std::string& digest) {
  std::lock_guard lock(mu_);
  ++in_use_[digest];
}

void ImageStore::release(const std::string& digest) {
  std::lock_guard lock(mu_);
  auto it = in_use_.find(digest);
  if (it != in_use_.end() && --it->second <= 0) in_use_.erase(it);
}

}  // namespace mill::image
