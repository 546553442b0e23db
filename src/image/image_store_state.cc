// ImageStore's metadata (images.json), disk accounting and garbage collection.

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <filesystem>

#include "common/files.h"
#include "common/log.h"
#include "image/image_store.h"
#include "image/reference.h"

namespace mill::image {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

json::array to_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

std::vector<std::string> from_array(const json::value* v) {
  std::vector<std::string> out;
  if (v == nullptr || !v->is_array()) return out;
  for (const auto& s : v->as_array()) {
    if (s.is_string()) out.emplace_back(s.as_string());
  }
  return out;
}

std::string str(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

uint64_t num(const json::value* v) {
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() > 0) return static_cast<uint64_t>(v->as_int64());
  return 0;
}

json::object config_to_json(const model::ImageConfig& c) {
  return {{"entrypoint", to_array(c.entrypoint)},
          {"cmd", to_array(c.cmd)},
          {"env", to_array(c.env)},
          {"working_dir", c.working_dir},
          {"user", c.user},
          {"exposed_ports", to_array(c.exposed_ports)},
          {"stop_signal", c.stop_signal}};
}

model::ImageConfig config_from_json(const json::object& o) {
  model::ImageConfig c;
  c.entrypoint = from_array(o.if_contains("entrypoint"));
  c.cmd = from_array(o.if_contains("cmd"));
  c.env = from_array(o.if_contains("env"));
  c.working_dir = str(o, "working_dir");
  c.user = str(o, "user");
  c.exposed_ports = from_array(o.if_contains("exposed_ports"));
  c.stop_signal = str(o, "stop_signal");
  return c;
}

}  // namespace

Result<void> ImageStore::save_locked(Durability durability) {
  json::object refs;
  for (const auto& [ref, digest] : refs_) refs[ref] = digest;
  json::object images;
  for (const auto& [digest, rec] : images_) {
    json::object blobs;
    for (const auto& [d, size] : rec.blobs) blobs[d] = size;
    images[digest] =
        json::object{{"repository", rec.repository}, {"config", config_to_json(rec.config)},
                     {"blobs", std::move(blobs)},    {"layers", to_array(rec.layers)},
                     {"use_seq", rec.use_seq},       {"last_used_ms", rec.last_used_ms}};
  }
  json::object layers;
  for (const auto& [digest, size] : layers_) layers[digest] = size;
  json::object top{{"version", 1},
                   {"refs", std::move(refs)},
                   {"images", std::move(images)},
                   {"layers", std::move(layers)}};
  return write_file_atomic(options_.root + "/images.json", json::serialize(top), 0600, durability);
}

Result<void> ImageStore::load_locked() {
  auto text = read_file(options_.root + "/images.json");
  if (!text && text.error().code == ErrorCode::kNotFound) return {};
  if (!text) return Unexpected(text.error());
  boost::system::error_code ec;
  json::value v = json::parse(*text, ec);
  if (ec || !v.is_object()) {
    // A cache: losing it costs downloads, not correctness. open() then removes the
    // layer dirs nobody knows.
    log::warn("image store: " + options_.root + "/images.json is unreadable; starting empty");
    return {};
  }
  const auto& top = v.as_object();
  if (auto* layers = top.if_contains("layers"); layers && layers->is_object()) {
    for (const auto& [digest, size] : layers->as_object()) {
      std::string d(digest);
      if (is_valid_digest(d) && fs::is_directory(layer_dir(d))) layers_[d] = num(&size);
    }
  }
  if (auto* images = top.if_contains("images"); images && images->is_object()) {
    for (const auto& [digest, value] : images->as_object()) {
      if (!value.is_object() || !is_valid_digest(std::string(digest))) continue;
      const auto& o = value.as_object();
      Record rec;
      rec.repository = str(o, "repository");
      if (auto* c = o.if_contains("config"); c && c->is_object()) {
        rec.config = config_from_json(c->as_object());
      }
      if (auto* b = o.if_contains("blobs"); b && b->is_object()) {
        for (const auto& [d, size] : b->as_object()) rec.blobs[std::string(d)] = num(&size);
      }
      rec.layers = from_array(o.if_contains("layers"));
      rec.use_seq = num(o.if_contains("use_seq"));
      rec.last_used_ms = static_cast<int64_t>(num(o.if_contains("last_used_ms")));
      next_seq_ = std::max(next_seq_, rec.use_seq + 1);
      images_[std::string(digest)] = std::move(rec);
    }
  }
  if (auto* refs = top.if_contains("refs"); refs && refs->is_object()) {
    for (const auto& [ref, digest] : refs->as_object()) {
      if (digest.is_string() && images_.contains(std::string(digest.as_string()))) {
        refs_[std::string(ref)] = std::string(digest.as_string());
      }
    }
  }
  return {};
}

uint64_t ImageStore::record_size_locked(const Record& rec) const {
  uint64_t total = 0;
  for (const auto& [d, size] : rec.blobs) total += size;
  for (const auto& l : rec.layers) {
    if (auto it = layers_.find(l); it != layers_.end()) total += it->second;
  }
  return total;
}

uint64_t ImageStore::usage_locked() const {
  uint64_t total = 0;
  std::set<std::string> blobs;
  for (const auto& [digest, rec] : images_) {
    for (const auto& [d, size] : rec.blobs) {
      if (blobs.insert(d).second) total += size;
    }
  }
  for (const auto& [d, size] : layers_) total += size;
  return total;
}

void ImageStore::pin_locked(const std::vector<std::string>& digests, int delta) {
  for (const auto& d : digests) {
    if ((pinned_[d] += delta) <= 0) pinned_.erase(d);
  }
}

uint64_t ImageStore::sweep_locked() {
  std::set<std::string> needed;
  for (const auto& [digest, rec] : images_) {
    for (const auto& [d, size] : rec.blobs) needed.insert(d);
    needed.insert(rec.layers.begin(), rec.layers.end());
  }
  uint64_t freed = 0;
  std::error_code ec;
  for (auto it = layers_.begin(); it != layers_.end();) {
    if (needed.contains(it->first) || pinned_.contains(it->first)) {
      ++it;
      continue;
    }
    fs::remove_all(layer_dir(it->first), ec);
    freed += it->second;
    it = layers_.erase(it);
  }
  for (const auto& entry : fs::directory_iterator(blobs_.root() + "/blobs/sha256", ec)) {
    std::string digest = "sha256:" + entry.path().filename().string();
    if (needed.contains(digest) || pinned_.contains(digest)) continue;
    freed += static_cast<uint64_t>(entry.file_size(ec));
    fs::remove(entry.path(), ec);
  }
  return freed;
}

uint64_t ImageStore::gc_locked(const std::string& keep) {
  if (options_.disk_budget_bytes == 0) return 0;
  uint64_t usage = usage_locked();
  if (usage <= options_.disk_budget_bytes) return 0;
  std::vector<std::pair<uint64_t, std::string>> candidates;  // (use_seq, digest)
  for (const auto& [digest, rec] : images_) {
    if (digest != keep && !in_use_.contains(digest)) candidates.emplace_back(rec.use_seq, digest);
  }
  std::sort(candidates.begin(), candidates.end());
  uint64_t freed = 0;
  for (const auto& [seq, digest] : candidates) {
    if (usage <= options_.disk_budget_bytes) break;
    log::info("image store: evicting " + digest + " to stay under the disk budget");
    images_.erase(digest);
    std::erase_if(refs_, [&](const auto& kv) { return kv.second == digest; });
    freed += sweep_locked();
    usage = usage_locked();
  }
  if (auto saved = save_locked(); !saved) log::warn("image store: " + saved.error().message);
  return freed;
}

Result<uint64_t> ImageStore::gc() {
  std::lock_guard lock(mu_);
  return gc_locked("");
}

std::vector<ImageInfo> ImageStore::list() const {
  std::lock_guard lock(mu_);
  std::vector<ImageInfo> out;
  for (const auto& [ref, digest] : refs_) {
    auto it = images_.find(digest);
    if (it == images_.end()) continue;
    out.push_back(ImageInfo{ref, digest, record_size_locked(it->second), it->second.last_used_ms,
                            in_use_.contains(digest)});
  }
  return out;
}

}  // namespace mill::image
