// mill_unpack_bench BLOB [RUNS] [--no-sync]: unpacks a layer blob into fresh temp dirs with
// image::unpack_layer and prints the best and median wall time, entries and MB/s of
// uncompressed data. Compare with `tar -x` of the same blob.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "image/unpack.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s BLOB [RUNS] [--no-sync]\n", argv[0]);
    return 2;
  }
  int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  // syncfs flushes the whole filesystem, other writers' data included: --no-sync
  // shows the unpack's own cost on a busy machine.
  auto sync = argc > 3 && std::string(argv[3]) == "--no-sync" ? mill::image::Sync::kNo
                                                              : mill::image::Sync::kYes;
  std::vector<double> seconds;
  mill::image::UnpackStats stats;
  for (int i = 0; i < runs; ++i) {
    std::string dir = "/tmp/mill-unpack-bench-XXXXXX";
    if (mkdtemp(dir.data()) == nullptr) return 1;
    auto start = std::chrono::steady_clock::now();
    auto result = mill::image::unpack_layer(argv[1], dir, sync);
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    if (!result) {
      std::fprintf(stderr, "unpack failed: %s\n", result.error().to_string().c_str());
      return 1;
    }
    stats = *result;
  }
  std::sort(seconds.begin(), seconds.end());
  double mb = static_cast<double>(stats.bytes) / (1 << 20);
  std::printf("entries=%llu data=%.1fMB best=%.3fs median=%.3fs (%.0f MB/s best)\n",
              static_cast<unsigned long long>(stats.entries), mb, seconds.front(),
              seconds[seconds.size() / 2], mb / seconds.front());
  return 0;
}
