#include "bench_images.h"

#include <fstream>
#include <random>
#include <stdexcept>

namespace mill::bench {

using testing::LayerCompression;
using testing::LayerEntry;

namespace {

std::string slurp_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

testing::TestLayer base_layer() {
  return testing::build_layer({LayerEntry::dir("bin"), LayerEntry::dir("tmp", 01777),
                               LayerEntry::file("bin/busybox", slurp_binary("/bin/busybox"), 0755),
                               LayerEntry::symlink("bin/sh", "busybox")},
                              LayerCompression::kGzip);
}

testing::TestLayer probe_layer(const std::string& probe_path) {
  return testing::build_layer({LayerEntry::file("probe", slurp_binary(probe_path), 0755)},
                              LayerCompression::kGzip);
}

}  // namespace

testing::TestImage big_image(const std::string& probe_path, int random_layers, size_t layer_bytes) {
  testing::ImageSpec spec;
  spec.entrypoint = {"/probe"};
  spec.env = {"PATH=/bin"};
  spec.layers = {base_layer()};
  std::mt19937_64 rng(0x6d696c6c);  // fixed seed: the same image on every run
  for (int i = 0; i < random_layers; ++i) {
    std::string data(layer_bytes, '\0');
    for (size_t j = 0; j + 8 <= data.size(); j += 8) {
      uint64_t v = rng();
      std::memcpy(data.data() + j, &v, 8);
    }
    spec.layers.push_back(testing::build_layer(
        {LayerEntry::dir("data"), LayerEntry::file("data/blob" + std::to_string(i), data)},
        LayerCompression::kGzip));
  }
  spec.layers.push_back(probe_layer(probe_path));
  return testing::build_image(spec);
}

size_t image_bytes(const testing::TestImage& image) {
  size_t n = image.config.size() + image.manifest.size();
  for (const auto& l : image.layers) n += l.bytes.size();
  return n;
}

}  // namespace mill::bench
