#pragma once

// The image most tests (and the benchmarks) run: the static probe app
// (tests/apps/probe) at /probe on top of a busybox layer, so the image has a shell.

#include <string>
#include <vector>

#include "support/oci_image.h"

namespace mill::testing {

// `probe_path` is the built mill_probe (MILL_PROBE_PATH in tests). The probe's layer
// is zstd unless `app_compression` says otherwise (Docker 20.10 needs gzip). The probe
// is the image's entrypoint, or with `probe_as_cmd` its cmd (no entrypoint), so that a
// `command` replaces it, as with most images.
TestImage probe_image(const std::string& probe_path, std::vector<std::string> extra_env = {},
                      LayerCompression app_compression = LayerCompression::kZstd,
                      bool probe_as_cmd = false);

}  // namespace mill::testing
