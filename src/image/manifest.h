#pragma once

// Image manifests, indexes and config blobs (pure: bytes in, values out). Parsing is
// strict about what Mill relies on (schema version, media types, digests, sizes) and
// lenient about fields it does not use (annotations, history, ...), as registries
// and builders add those freely. Input is untrusted: it comes from any registry.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"
#include "model/image.h"

namespace mill::image {

inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";

// Limits against absurd input. A registry (distribution) refuses manifests over 4 MiB.
inline constexpr size_t kMaxManifestBytes = 4 * 1024 * 1024;
inline constexpr size_t kMaxConfigBytes = 8 * 1024 * 1024;
inline constexpr uint64_t kMaxBlobBytes = 1ull << 40;  // 1 TiB
inline constexpr size_t kMaxLayers = 256;
inline constexpr size_t kMaxIndexEntries = 1024;

enum class Compression { kNone, kGzip, kZstd };

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
};

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<64 hex>", checked
  uint64_t size = 0;   // checked <= kMaxBlobBytes
  Platform platform;   // only in index entries; empty otherwise
};

// An OCI image manifest or a Docker v2 schema 2 manifest.
struct Manifest {
  std::string media_type;  // kOciManifest or kDockerManifest
  Descriptor config;
  std::vector<Descriptor> layers;  // bottom layer first
};

// An OCI image index or a Docker manifest list.
struct Index {
  std::string media_type;  // kOciIndex or kDockerManifestList
  std::vector<Descriptor> manifests;
};

using ManifestDocument = std::variant<Manifest, Index>;

// Accept header value listing the four manifest media types.
std::string manifest_accept_header();

// Parses a manifest or index. The kind comes from the document's mediaType field,
// else from content_type (the response's Content-Type, parameters ignored), else from
// its shape (OCI allows omitting mediaType). Schema 1 and unknown types are errors;
// so are mediaType and Content-Type naming different known types.
Result<ManifestDocument> parse_manifest(std::string_view bytes, std::string_view content_type = {});

// The first entry of the index for os/architecture (and variant, when given). kNotFound
// listing the platforms the index has otherwise.
Result<Descriptor> select_platform(const Index& index, std::string_view os,
                                   std::string_view architecture, std::string_view variant = {});

// The compression a layer media type implies; kInvalidArgument for non-layer types.
Result<Compression> layer_compression(std::string_view media_type);

// Reads the image config blob's "config" object: Entrypoint, Cmd, Env, WorkingDir,
// User, ExposedPorts, StopSignal. Absent or null fields stay empty.
Result<model::ImageConfig> parse_image_config(std::string_view bytes);

}  // namespace mill::image
