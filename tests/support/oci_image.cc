#include "support/oci_image.h"

#include <archive.h>
#include <archive_entry.h>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <stdexcept>

#include "crypto/sha256.h"

namespace mill::testing {
namespace {

namespace json = boost::json;

la_ssize_t append_cb(struct archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

void check(struct archive* a, int rc) {
  if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
    throw std::runtime_error(std::string("libarchive: ") + archive_error_string(a));
  }
}

std::string write_tar(const std::vector<LayerEntry>& entries, LayerCompression compression) {
  std::string out;
  struct archive* a = archive_write_new();
  check(a, archive_write_set_format_pax_restricted(a));
  if (compression == LayerCompression::kGzip) check(a, archive_write_add_filter_gzip(a));
  if (compression == LayerCompression::kZstd) check(a, archive_write_add_filter_zstd(a));
  archive_write_set_bytes_in_last_block(a, 1);
  check(a, archive_write_open(a, &out, nullptr, append_cb, nullptr));
  for (const auto& e : entries) {
    struct archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.path.c_str());
    archive_entry_set_uid(ae, e.uid);
    archive_entry_set_gid(ae, e.gid);
    archive_entry_set_mtime(ae, 1700000000, 0);
    switch (e.kind) {
      case LayerEntry::Kind::kFile:
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, e.mode);
        archive_entry_set_size(ae, static_cast<la_int64_t>(e.content.size()));
        break;
      case LayerEntry::Kind::kDir:
        archive_entry_set_filetype(ae, AE_IFDIR);
        archive_entry_set_perm(ae, e.mode);
        break;
      case LayerEntry::Kind::kSymlink:
        archive_entry_set_filetype(ae, AE_IFLNK);
        archive_entry_set_perm(ae, 0777);
        archive_entry_set_symlink(ae, e.target.c_str());
        break;
      case LayerEntry::Kind::kHardlink:
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, e.mode);
        archive_entry_set_hardlink(ae, e.target.c_str());
        archive_entry_set_size(ae, 0);
        break;
    }
    check(a, archive_write_header(a, ae));
    if (e.kind == LayerEntry::Kind::kFile && !e.content.empty()) {
      archive_write_data(a, e.content.data(), e.content.size());
    }
    archive_entry_free(ae);
  }
  check(a, archive_write_close(a));
  archive_write_free(a);
  return out;
}

std::string layer_media_type(LayerCompression c, MediaStyle style) {
  if (style == MediaStyle::kDocker) {
    // Docker's schema 2 has a gzip layer type only; others fall back to OCI's names.
    if (c == LayerCompression::kGzip) return "application/vnd.docker.image.rootfs.diff.tar.gzip";
  }
  switch (c) {
    case LayerCompression::kNone:
      return "application/vnd.oci.image.layer.v1.tar";
    case LayerCompression::kGzip:
      return "application/vnd.oci.image.layer.v1.tar+gzip";
    case LayerCompression::kZstd:
      return "application/vnd.oci.image.layer.v1.tar+zstd";
  }
  return {};
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

}  // namespace

LayerEntry LayerEntry::file(std::string path, std::string content, int mode, int uid, int gid) {
  return {Kind::kFile, std::move(path), std::move(content), {}, mode, uid, gid};
}
LayerEntry LayerEntry::dir(std::string path, int mode) {
  return {Kind::kDir, std::move(path), {}, {}, mode, 0, 0};
}
LayerEntry LayerEntry::symlink(std::string path, std::string target) {
  return {Kind::kSymlink, std::move(path), {}, std::move(target), 0777, 0, 0};
}
LayerEntry LayerEntry::hardlink(std::string path, std::string target) {
  return {Kind::kHardlink, std::move(path), {}, std::move(target), 0644, 0, 0};
}
LayerEntry LayerEntry::whiteout(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return file(dir + ".wh." + name, "");
}
LayerEntry LayerEntry::opaque(const std::string& dir) { return file(dir + "/.wh..wh..opq", ""); }

std::string test_sha256_digest(const std::string& bytes) { return crypto::sha256_digest(bytes); }

TestLayer build_layer(const std::vector<LayerEntry>& entries, LayerCompression compression,
                      MediaStyle style) {
  TestLayer layer;
  layer.diff_id = crypto::sha256_digest(write_tar(entries, LayerCompression::kNone));
  layer.bytes = write_tar(entries, compression);
  layer.digest = crypto::sha256_digest(layer.bytes);
  layer.media_type = layer_media_type(compression, style);
  return layer;
}

TestImage build_image(const ImageSpec& spec) {
  const bool docker = spec.style == MediaStyle::kDocker;
  TestImage image;
  image.layers = spec.layers;
  json::array diff_ids;
  for (const auto& l : spec.layers) diff_ids.emplace_back(l.diff_id);
  json::object config{{"Entrypoint", strings(spec.entrypoint)},
                      {"Cmd", strings(spec.cmd)},
                      {"Env", strings(spec.env)},
                      {"WorkingDir", spec.working_dir},
                      {"User", spec.user}};
  json::object top{{"architecture", spec.architecture},
                   {"os", spec.os},
                   {"config", std::move(config)},
                   {"rootfs", json::object{{"type", "layers"}, {"diff_ids", std::move(diff_ids)}}}};
  image.config = json::serialize(top);
  image.config_digest = crypto::sha256_digest(image.config);
  json::array layers;
  for (const auto& l : spec.layers) {
    layers.push_back(
        json::object{{"mediaType", l.media_type}, {"digest", l.digest}, {"size", l.bytes.size()}});
  }
  image.manifest_media_type = docker ? "application/vnd.docker.distribution.manifest.v2+json"
                                     : "application/vnd.oci.image.manifest.v1+json";
  json::object manifest{
      {"schemaVersion", 2},
      {"mediaType", image.manifest_media_type},
      {"config",
       json::object{{"mediaType", docker ? "application/vnd.docker.container.image.v1+json"
                                         : "application/vnd.oci.image.config.v1+json"},
                    {"digest", image.config_digest},
                    {"size", image.config.size()}}},
      {"layers", std::move(layers)}};
  image.manifest = json::serialize(manifest);
  image.manifest_digest = crypto::sha256_digest(image.manifest);
  return image;
}

TestIndex build_index(const std::vector<std::pair<TestImage, ImageSpec>>& images,
                      MediaStyle style) {
  TestIndex index;
  index.media_type = style == MediaStyle::kDocker
                         ? "application/vnd.docker.distribution.manifest.list.v2+json"
                         : "application/vnd.oci.image.index.v1+json";
  json::array manifests;
  for (const auto& [image, spec] : images) {
    manifests.push_back(json::object{
        {"mediaType", image.manifest_media_type},
        {"digest", image.manifest_digest},
        {"size", image.manifest.size()},
        {"platform", json::object{{"os", spec.os}, {"architecture", spec.architecture}}}});
    index.images.push_back(image);
  }
  json::object top{
      {"schemaVersion", 2}, {"mediaType", index.media_type}, {"manifests", std::move(manifests)}};
  index.bytes = json::serialize(top);
  index.digest = crypto::sha256_digest(index.bytes);
  return index;
}

}  // namespace mill::testing
