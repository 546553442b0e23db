// Fuzzes the parsers of what a registry or a user hands us: image references,
// manifests / indexes (with a Content-Type), config blobs and WWW-Authenticate
// challenges. The first byte picks the parser. Invariants: no crash, and a parsed
// reference's canonical form parses back to the same reference.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "image/challenge.h"
#include "image/manifest.h"
#include "image/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto ref = mill::image::parse_reference(input);
      if (ref) {
        auto again = mill::image::parse_reference(ref->str());
        if (!again || !(*again == *ref)) std::abort();
        if (!ref->digest.empty() && !mill::image::is_valid_digest(ref->digest)) std::abort();
      }
      break;
    }
    case 1: {
      // "content-type\n" then the document.
      size_t nl = input.find('\n');
      std::string type = nl == std::string::npos ? "" : input.substr(0, nl);
      std::string body = nl == std::string::npos ? input : input.substr(nl + 1);
      auto doc = mill::image::parse_manifest(body, type);
      if (doc) {
        if (auto* index = std::get_if<mill::image::Index>(&*doc)) {
          (void)mill::image::select_platform(*index, "linux", "amd64");
          for (const auto& d : index->manifests) {
            if (!mill::image::is_valid_digest(d.digest)) std::abort();
          }
        } else {
          const auto& m = std::get<mill::image::Manifest>(*doc);
          if (m.layers.size() > mill::image::kMaxLayers) std::abort();
        }
      }
      break;
    }
    case 2:
      (void)mill::image::parse_image_config(input);
      break;
    default:
      (void)mill::image::parse_auth_challenge(input);
      break;
  }
  return 0;
}
