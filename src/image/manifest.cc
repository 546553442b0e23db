#include "image/manifest.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "image/reference.h"

namespace mill::image {
namespace {

namespace json = boost::json;

Unexpected bad(const std::string& why) {
  return make_error(ErrorCode::kInvalidArgument, "bad manifest: " + why);
}

Result<json::object> parse_json_object(std::string_view bytes, size_t limit, const char* what) {
  if (bytes.size() > limit) {
    return make_error(ErrorCode::kTooLarge,
                      std::string(what) + " is larger than " + std::to_string(limit) + " bytes");
  }
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::value v = json::parse(bytes, ec, {}, opts);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(what) + " is not valid JSON: " + ec.message());
  }
  if (!v.is_object()) {
    return make_error(ErrorCode::kInvalidArgument, std::string(what) + " is not a JSON object");
  }
  return std::move(v.as_object());
}

// A string field; "" when absent. Error when present with another type.
Result<std::string> opt_string(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::string();
  if (!it->value().is_string()) return bad("'" + std::string(key) + "' is not a string");
  return std::string(it->value().as_string());
}

std::string_view strip_params(std::string_view content_type) {
  size_t semi = content_type.find(';');
  if (semi != std::string_view::npos) content_type = content_type.substr(0, semi);
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  return content_type;
}

bool is_manifest_type(std::string_view t) { return t == kOciManifest || t == kDockerManifest; }
bool is_index_type(std::string_view t) { return t == kOciIndex || t == kDockerManifestList; }

Result<Descriptor> parse_descriptor(const json::value& v, const char* what) {
  if (!v.is_object()) return bad(std::string(what) + " is not an object");
  const auto& o = v.as_object();
  Descriptor d;
  d.media_type = MILL_TRY(opt_string(o, "mediaType"));
  d.digest = MILL_TRY(opt_string(o, "digest"));
  if (!is_valid_digest(d.digest)) {
    return bad(std::string(what) + " digest '" + d.digest.substr(0, 80) +
               "' is not sha256:<64 lowercase hex>");
  }
  auto size = o.find("size");
  if (size == o.end()) return bad(std::string(what) + " has no size");
  if (size->value().is_uint64()) {
    d.size = size->value().as_uint64();
  } else if (size->value().is_int64() && size->value().as_int64() >= 0) {
    d.size = static_cast<uint64_t>(size->value().as_int64());
  } else {
    return bad(std::string(what) + " size is not a non-negative integer");
  }
  if (d.size > kMaxBlobBytes) return bad(std::string(what) + " size is absurdly large");
  if (auto p = o.find("platform"); p != o.end()) {
    if (!p->value().is_object()) return bad("platform is not an object");
    const auto& po = p->value().as_object();
    d.platform.os = MILL_TRY(opt_string(po, "os"));
    d.platform.architecture = MILL_TRY(opt_string(po, "architecture"));
    d.platform.variant = MILL_TRY(opt_string(po, "variant"));
  }
  return d;
}

Result<Manifest> parse_image_manifest(const json::object& o, std::string media_type) {
  Manifest m;
  m.media_type = std::move(media_type);
  auto config = o.find("config");
  if (config == o.end()) return bad("no config descriptor");
  m.config = MILL_TRY(parse_descriptor(config->value(), "config"));
  if (m.config.media_type != kOciConfig && m.config.media_type != kDockerConfig) {
    return bad("config media type '" + m.config.media_type.substr(0, 100) +
               "' is not an image config");
  }
  auto layers = o.find("layers");
  if (layers == o.end() || !layers->value().is_array()) return bad("no layers array");
  const auto& arr = layers->value().as_array();
  if (arr.size() > kMaxLayers) return bad("more than " + std::to_string(kMaxLayers) + " layers");
  for (const auto& l : arr) {
    Descriptor d = MILL_TRY(parse_descriptor(l, "layer"));
    MILL_TRY(layer_compression(d.media_type));
    m.layers.push_back(std::move(d));
  }
  return m;
}

Result<Index> parse_index(const json::object& o, std::string media_type) {
  Index index;
  index.media_type = std::move(media_type);
  auto manifests = o.find("manifests");
  if (manifests == o.end() || !manifests->value().is_array()) return bad("no manifests array");
  const auto& arr = manifests->value().as_array();
  if (arr.size() > kMaxIndexEntries) return bad("index has too many entries");
  for (const auto& e : arr) {
    index.manifests.push_back(MILL_TRY(parse_descriptor(e, "index entry")));
  }
  return index;
}

Result<std::vector<std::string>> string_array(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return out;
  if (!it->value().is_array()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "image config: '" + std::string(key) + "' is not an array");
  }
  for (const auto& s : it->value().as_array()) {
    if (!s.is_string()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "image config: '" + std::string(key) + "' holds a non-string");
    }
    out.emplace_back(s.as_string());
  }
  return out;
}

}  // namespace

std::string manifest_accept_header() {
  return std::string(kOciManifest) + ", " + std::string(kOciIndex) + ", " +
         std::string(kDockerManifest) + ", " + std::string(kDockerManifestList);
}

Result<ManifestDocument> parse_manifest(std::string_view bytes, std::string_view content_type) {
  json::object o = MILL_TRY(parse_json_object(bytes, kMaxManifestBytes, "manifest"));
  auto version = o.find("schemaVersion");
  if (version == o.end() || !version->value().is_int64() || version->value().as_int64() != 2) {
    if (version != o.end() && version->value().is_int64() && version->value().as_int64() == 1) {
      return bad("Docker schema 1 manifests are not supported");
    }
    return bad("schemaVersion is not 2");
  }
  std::string field = MILL_TRY(opt_string(o, "mediaType"));
  std::string_view header = strip_params(content_type);
  bool header_known = is_manifest_type(header) || is_index_type(header);
  std::string type;
  if (!field.empty()) {
    if (!is_manifest_type(field) && !is_index_type(field)) {
      return bad("unsupported media type '" + field.substr(0, 100) + "'");
    }
    if (header_known && header != field) {
      return bad("mediaType '" + field + "' disagrees with Content-Type '" + std::string(header) +
                 "'");
    }
    type = field;
  } else if (header_known) {
    type = std::string(header);
  } else if (o.contains("manifests")) {
    type = std::string(kOciIndex);
  } else if (o.contains("config") && o.contains("layers")) {
    type = std::string(kOciManifest);
  } else {
    return bad("neither a manifest nor an index");
  }
  if (is_index_type(type)) return ManifestDocument(MILL_TRY(parse_index(o, std::move(type))));
  return ManifestDocument(MILL_TRY(parse_image_manifest(o, std::move(type))));
}

Result<Descriptor> select_platform(const Index& index, std::string_view os,
                                   std::string_view architecture, std::string_view variant) {
  std::string seen;
  for (const auto& d : index.manifests) {
    const Platform& p = d.platform;
    if (p.os == os && p.architecture == architecture && (variant.empty() || p.variant == variant) &&
        is_manifest_type(d.media_type.empty() ? kOciManifest : std::string_view(d.media_type))) {
      return d;
    }
    if (!p.os.empty() && seen.size() < 400) {
      if (!seen.empty()) seen += ", ";
      seen += p.os + "/" + p.architecture + (p.variant.empty() ? "" : "/" + p.variant);
    }
  }
  return make_error(ErrorCode::kNotFound, "no " + std::string(os) + "/" +
                                              std::string(architecture) + " image in the index" +
                                              (seen.empty() ? "" : " (it has " + seen + ")"));
}

Result<Compression> layer_compression(std::string_view t) {
  if (t == "application/vnd.oci.image.layer.v1.tar" ||
      t == "application/vnd.oci.image.layer.nondistributable.v1.tar") {
    return Compression::kNone;
  }
  if (t == "application/vnd.oci.image.layer.v1.tar+gzip" ||
      t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
      t == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
      t == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") {
    return Compression::kGzip;
  }
  if (t == "application/vnd.oci.image.layer.v1.tar+zstd" ||
      t == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd") {
    return Compression::kZstd;
  }
  return bad("unsupported layer media type '" + std::string(t.substr(0, 100)) + "'");
}

Result<model::ImageConfig> parse_image_config(std::string_view bytes) {
  json::object top = MILL_TRY(parse_json_object(bytes, kMaxConfigBytes, "image config"));
  model::ImageConfig out;
  auto it = top.find("config");
  if (it == top.end() || it->value().is_null()) return out;
  if (!it->value().is_object()) {
    return make_error(ErrorCode::kInvalidArgument, "image config: 'config' is not an object");
  }
  const auto& c = it->value().as_object();
  out.entrypoint = MILL_TRY(string_array(c, "Entrypoint"));
  out.cmd = MILL_TRY(string_array(c, "Cmd"));
  out.env = MILL_TRY(string_array(c, "Env"));
  auto field = [&](std::string_view key) -> Result<std::string> {
    auto r = opt_string(c, key);
    if (!r) {
      return make_error(ErrorCode::kInvalidArgument,
                        "image config: '" + std::string(key) + "' is not a string");
    }
    return r;
  };
  out.working_dir = MILL_TRY(field("WorkingDir"));
  out.user = MILL_TRY(field("User"));
  out.stop_signal = MILL_TRY(field("StopSignal"));
  if (auto ports = c.find("ExposedPorts"); ports != c.end() && !ports->value().is_null()) {
    if (!ports->value().is_object()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "image config: 'ExposedPorts' is not an object");
    }
    for (const auto& p : ports->value().as_object()) out.exposed_ports.emplace_back(p.key());
  }
  return out;
}

}  // namespace mill::image
