#pragma once

// The images bench/spawn_bench.cc pushes to its registry, built in memory with the
// test support library (tests/support/oci_image.h).

#include <cstring>
#include <string>

#include "support/oci_image.h"
#include "support/probe_image.h"

namespace mill::bench {

// The probe image plus random_layers layers of layer_bytes incompressible random bytes
// each (gzip), between the busybox layer and the probe's.
testing::TestImage big_image(const std::string& probe_path, int random_layers, size_t layer_bytes);

// Config + manifest + compressed layers: what a pull transfers.
size_t image_bytes(const testing::TestImage& image);

}  // namespace mill::bench
