#include "support/probe_image.h"

#include "support/files.h"

namespace mill::testing {

TestImage probe_image(const std::string& probe_path, std::vector<std::string> extra_env,
                      LayerCompression app_compression, bool probe_as_cmd) {
  std::vector<LayerEntry> base{LayerEntry::dir("bin"), LayerEntry::dir("tmp", 01777),
                               LayerEntry::file("bin/busybox", slurp("/bin/busybox"), 0755),
                               LayerEntry::symlink("bin/sh", "busybox")};
  std::vector<LayerEntry> app{LayerEntry::file("probe", slurp(probe_path), 0755)};
  ImageSpec spec;
  if (probe_as_cmd) {
    spec.cmd = {"/probe"};
  } else {
    spec.entrypoint = {"/probe"};
  }
  spec.env = {"PATH=/bin"};
  spec.env.insert(spec.env.end(), extra_env.begin(), extra_env.end());
  spec.layers = {build_layer(base, LayerCompression::kGzip), build_layer(app, app_compression)};
  return build_image(spec);
}

}  // namespace mill::testing
