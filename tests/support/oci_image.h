#pragma once

// Builds OCI / Docker images in memory for tests: tar layers from a list of entries
// (any names, including hostile ones such as "../evil" or "/abs"), compressed with
// gzip, zstd or not at all (libarchive), then config, manifest and optional index.
// Everything is deterministic (fixed mtimes), so digests are stable within a build.

#include <string>
#include <vector>

namespace mill::testing {

struct LayerEntry {
  enum class Kind { kFile, kDir, kSymlink, kHardlink };
  Kind kind = Kind::kFile;
  std::string path;     // written verbatim as the tar member name
  std::string content;  // kFile
  std::string target;   // kSymlink, kHardlink
  int mode = 0644;
  int uid = 0;
  int gid = 0;

  static LayerEntry file(std::string path, std::string content, int mode = 0644, int uid = 0,
                         int gid = 0);
  static LayerEntry dir(std::string path, int mode = 0755);
  static LayerEntry symlink(std::string path, std::string target);
  static LayerEntry hardlink(std::string path, std::string target);
  // "dir/name" -> an empty file "dir/.wh.name" (deletes name from lower layers).
  static LayerEntry whiteout(const std::string& path);
  // "dir" -> "dir/.wh..wh..opq" (hides everything lower layers have in dir).
  static LayerEntry opaque(const std::string& dir);
};

enum class LayerCompression { kNone, kGzip, kZstd };
enum class MediaStyle { kOci, kDocker };

struct TestLayer {
  std::string bytes;       // the blob as pushed
  std::string digest;      // sha256 of bytes
  std::string diff_id;     // sha256 of the uncompressed tar
  std::string media_type;  // matches compression and style
};

TestLayer build_layer(const std::vector<LayerEntry>& entries,
                      LayerCompression compression = LayerCompression::kGzip,
                      MediaStyle style = MediaStyle::kOci);

struct ImageSpec {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::vector<TestLayer> layers;
  MediaStyle style = MediaStyle::kOci;
  std::string os = "linux";
  std::string architecture = "amd64";
};

struct TestImage {
  std::string config;
  std::string config_digest;
  std::string manifest;
  std::string manifest_digest;
  std::string manifest_media_type;
  std::vector<TestLayer> layers;
};

TestImage build_image(const ImageSpec& spec);

struct TestIndex {
  std::string bytes;
  std::string digest;
  std::string media_type;
  std::vector<TestImage> images;  // in index order
};

// An index (OCI) or manifest list (Docker) over images, each listed with its own
// ImageSpec os/architecture (pass them in via the specs the images were built from).
TestIndex build_index(const std::vector<std::pair<TestImage, ImageSpec>>& images,
                      MediaStyle style = MediaStyle::kOci);

std::string test_sha256_digest(const std::string& bytes);

}  // namespace mill::testing
