// Pulls against a real registry (Debian's docker-registry) started per test.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "common/files.h"
#include "image/image_store.h"
#include "support/oci_image.h"
#include "support/temp_dir.h"
#include "support/test_registry.h"

namespace mill::image {
namespace {

namespace fs = std::filesystem;
using testing::ImageSpec;
using testing::LayerCompression;
using testing::LayerEntry;
using testing::MediaStyle;
using testing::TestImage;
using testing::TestRegistry;

// Stands in for image/unpack.h: writes the bytes it reads into the layer dir as
// "blob", passing on the reader's errors as unpack_layer does.
struct FakeUnpacker {
  std::atomic<int> calls{0};
  LayerUnpacker fn() {
    return [this](const LayerReader& read, const std::string& dest) -> Result<void> {
      ++calls;
      std::string bytes;
      for (;;) {
        auto chunk = MILL_TRY(read());
        if (chunk.empty()) break;
        bytes.append(chunk);
      }
      return write_file_atomic(dest + "/blob", bytes, 0644, Durability::kProcessCrash);
    };
  }
};

TestImage make_image(const std::string& tag, int layers, MediaStyle style = MediaStyle::kOci,
                     size_t layer_bytes = 1000) {
  ImageSpec spec;
  spec.style = style;
  spec.entrypoint = {"/bin/" + tag};
  spec.cmd = {"--flag"};
  spec.env = {"IMAGE=" + tag};
  spec.working_dir = "/srv";
  for (int i = 0; i < layers; ++i) {
    // Incompressible, so blob sizes are close to layer_bytes.
    std::string content(layer_bytes, '\0');
    uint32_t x = static_cast<uint32_t>(std::hash<std::string>{}(tag)) + static_cast<uint32_t>(i);
    for (char& c : content) c = static_cast<char>((x = x * 1664525u + 1013904223u) >> 24);
    spec.layers.push_back(testing::build_layer(
        {LayerEntry::dir("etc"), LayerEntry::file("etc/" + tag + std::to_string(i), content)},
        i % 2 ? LayerCompression::kZstd : LayerCompression::kGzip, style));
  }
  return testing::build_image(spec);
}

class Pull : public ::testing::Test {
 protected:
  std::unique_ptr<ImageStore> open_store(const std::string& ca_file = {},
                                         std::optional<RegistryCredentials> creds = {},
                                         uint64_t budget = 0,
                                         std::chrono::milliseconds tag_ttl = {}) {
    ImageStoreOptions o;
    o.tag_ttl = tag_ttl;
    o.root = dir_.file("images");
    o.unpack = unpacker_.fn();
    o.ca_file = ca_file;
    o.disk_budget_bytes = budget;
    o.credentials = [creds](const std::string&) { return creds; };
    auto store = ImageStore::open(std::move(o));
    EXPECT_TRUE(store) << store.error().to_string();
    return store ? std::move(*store) : nullptr;
  }
  bool exists(const std::string& rel) const { return fs::exists(dir_.file("images/" + rel)); }
  size_t entries(const std::string& rel) const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_.file("images/" + rel))) ++n;
    return n;
  }

  testing::TempDir dir_;
  FakeUnpacker unpacker_;
};

TEST_F(Pull, ByTagAndByDigestMultiLayer) {
  auto registry = std::make_unique<TestRegistry>();
  ASSERT_TRUE(registry->ok());
  TestImage image = make_image("app", 3);
  ASSERT_TRUE(registry->push("team/app", "v1", image));
  const std::string host = registry->host();
  auto store = open_store();
  ASSERT_TRUE(store);

  auto pulled = store->pull(host + "/team/app:v1");
  ASSERT_TRUE(pulled) << pulled.error().message;
  EXPECT_EQ(pulled->reference, host + "/team/app:v1");
  EXPECT_EQ(pulled->digest, image.manifest_digest);
  EXPECT_EQ(pulled->config.entrypoint, std::vector<std::string>{"/bin/app"});
  EXPECT_EQ(pulled->config.env, std::vector<std::string>{"IMAGE=app"});
  EXPECT_EQ(pulled->config.working_dir, "/srv");
  ASSERT_EQ(pulled->layer_dirs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(pulled->layer_dirs[i],
              dir_.file("images/layers/" + image.layers[i].digest.substr(7)));
    EXPECT_EQ(*read_file(pulled->layer_dirs[i] + "/blob"), image.layers[i].bytes)
        << "layer " << i << ", bottom first";
  }
  EXPECT_GT(pulled->size_bytes, 3000u);
  EXPECT_EQ(unpacker_.calls, 3);
  EXPECT_EQ(entries("tmp"), 0u);
  EXPECT_FALSE(exists("blobs/sha256/" + image.layers[0].digest.substr(7)))
      << "layer blobs go once unpacked";

  auto by_digest = store->pull(host + "/team/app@" + image.manifest_digest);
  ASSERT_TRUE(by_digest) << by_digest.error().message;
  EXPECT_EQ(by_digest->layer_dirs, pulled->layer_dirs);
  EXPECT_EQ(unpacker_.calls, 3) << "each layer is unpacked once";

  // After a restart, with the registry gone, a pull by digest is answered from disk.
  store.reset();
  registry.reset();
  store = open_store();
  auto cached = store->pull(host + "/team/app@" + image.manifest_digest);
  ASSERT_TRUE(cached) << cached.error().message;
  EXPECT_EQ(cached->config, pulled->config);
  EXPECT_EQ(cached->layer_dirs, pulled->layer_dirs);
  auto by_tag = store->pull(host + "/team/app:v1");
  ASSERT_FALSE(by_tag) << "a tag always asks the registry";
  EXPECT_NE(by_tag.error().message.find("pull " + host + "/team/app:v1: "), std::string::npos)
      << by_tag.error().message;
}

TEST_F(Pull, DockerIndexPicksLinuxAmd64) {
  TestRegistry registry;
  ASSERT_TRUE(registry.ok());
  ImageSpec arm;
  arm.style = MediaStyle::kDocker;
  arm.architecture = "arm64";
  arm.entrypoint = {"/arm"};
  arm.layers = {testing::build_layer({LayerEntry::file("arm", "arm")}, LayerCompression::kGzip,
                                     MediaStyle::kDocker)};
  ImageSpec amd = arm;
  amd.architecture = "amd64";
  amd.entrypoint = {"/amd"};
  amd.layers = {testing::build_layer({LayerEntry::file("amd", "amd")}, LayerCompression::kGzip,
                                     MediaStyle::kDocker)};
  auto index = testing::build_index(
      {{testing::build_image(arm), arm}, {testing::build_image(amd), amd}}, MediaStyle::kDocker);
  ASSERT_TRUE(registry.push_index("multi", "latest", index));
  auto store = open_store();
  ASSERT_TRUE(store);
  auto pulled = store->pull(registry.host() + "/multi");
  ASSERT_TRUE(pulled) << pulled.error().message;
  EXPECT_EQ(pulled->digest, index.digest);
  EXPECT_EQ(pulled->config.entrypoint, std::vector<std::string>{"/amd"});
  ASSERT_EQ(pulled->layer_dirs.size(), 1u);
  EXPECT_EQ(*read_file(pulled->layer_dirs[0] + "/blob"), amd.layers[0].bytes);
  EXPECT_EQ(unpacker_.calls, 1) << "the arm64 layer is never fetched";
}

TEST_F(Pull, BasicAuth) {
  TestRegistry registry({.username = "deploy", .password = "s3cret"});
  ASSERT_TRUE(registry.ok());
  ASSERT_TRUE(registry.push("private/app", "v1", make_image("private", 1)));
  const std::string ref = registry.host() + "/private/app:v1";

  auto anonymous = open_store()->pull(ref);
  ASSERT_FALSE(anonymous);
  EXPECT_EQ(anonymous.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(anonymous.error().message.find("no credentials configured"), std::string::npos);

  auto wrong = open_store({}, RegistryCredentials{"deploy", "wrong"})->pull(ref);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message,
            "pull " + ref + ": registry " + registry.host() + ": authentication failed (401)");

  auto right = open_store({}, RegistryCredentials{"deploy", "s3cret"})->pull(ref);
  ASSERT_TRUE(right) << right.error().message;
  EXPECT_EQ(right->config.entrypoint, std::vector<std::string>{"/bin/private"});
}

TEST_F(Pull, TlsNeedsTrustedCertificate) {
  testing::TestRegistryOptions tls;
  tls.tls = true;
  TestRegistry registry(tls);
  ASSERT_TRUE(registry.ok());
  ASSERT_TRUE(registry.push("secure/app", "v1", make_image("secure", 2)));
  const std::string ref = registry.host() + "/secure/app:v1";

  auto untrusted = open_store()->pull(ref);
  ASSERT_FALSE(untrusted) << "a loopback registry must not fall back to HTTP on a bad cert";
  EXPECT_NE(untrusted.error().message.find("certificate verify failed"), std::string::npos)
      << untrusted.error().message;
  EXPECT_FALSE(exists("layers/" + make_image("secure", 2).layers[0].digest.substr(7)));

  auto trusted = open_store(registry.ca_file())->pull(ref);
  ASSERT_TRUE(trusted) << trusted.error().message;
  EXPECT_EQ(trusted->layer_dirs.size(), 2u);
}

TEST_F(Pull, TamperedBlobIsRejectedAndNothingIsStored) {
  TestRegistry registry;
  ASSERT_TRUE(registry.ok());
  TestImage image = make_image("evil", 2, MediaStyle::kOci, 5000);
  ASSERT_TRUE(registry.push("evil", "v1", image));
  const std::string& victim = image.layers[1].bytes;
  std::string forged = victim;
  forged[forged.size() / 2] ^= 0x55;
  registry.tamper_blob(image.layers[1].digest, forged);

  auto store = open_store();
  ASSERT_TRUE(store);
  auto pulled = store->pull(registry.host() + "/evil:v1");
  ASSERT_FALSE(pulled);
  EXPECT_NE(pulled.error().message.find("blob " + image.layers[1].digest +
                                        " does not match its digest (got " +
                                        testing::test_sha256_digest(forged) + ")"),
            std::string::npos)
      << pulled.error().message;
  EXPECT_EQ(pulled.error().message.rfind("pull " + registry.host() + "/evil:v1: ", 0), 0u);
  EXPECT_EQ(entries("layers"), 0u) << "no layer of a failed pull stays";
  EXPECT_EQ(entries("blobs/sha256"), 0u);
  EXPECT_EQ(entries("tmp"), 0u);
  EXPECT_TRUE(store->list().empty());
  auto reopened = open_store();
  ASSERT_TRUE(reopened);
  EXPECT_TRUE(reopened->list().empty()) << "no image record on disk either";
}

TEST_F(Pull, CachedPullCostsOneManifestRequest) {
  TestRegistry registry;
  ASSERT_TRUE(registry.ok());
  ASSERT_TRUE(registry.push("app", "v1", make_image("cached", 2)));
  testing::CountingProxy proxy(registry.host(), false, "");
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->pull(proxy.host() + "/app:v1"));
  EXPECT_EQ(proxy.count("GET", "/blobs/"), 3) << "config and two layers";
  proxy.reset();
  for (int i = 0; i < 3; ++i) {
    auto again = store->pull(proxy.host() + "/app:v1");
    ASSERT_TRUE(again) << again.error().message;
  }
  EXPECT_EQ(proxy.count("GET", "/manifests/"), 3) << "one per pull";
  EXPECT_EQ(proxy.count("GET", "/blobs/"), 0);
  EXPECT_EQ(proxy.count("GET", "/v2/"), 3) << "and nothing else";
}

// A cache hit only moves the LRU order, which is not worth a write per spawn: a burst
// of hits leaves images.json alone, while a hit under a new name is saved at once.
TEST_F(Pull, ABurstOfCacheHitsDoesNotRewriteTheIndex) {
  TestRegistry registry;
  ASSERT_TRUE(registry.ok());
  TestImage image = make_image("burst", 1);
  ASSERT_TRUE(registry.push("app", "v1", image));
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->pull(registry.host() + "/app:v1"));
  ASSERT_TRUE(store->pull(registry.host() + "/app:v1"));  // the first hit may save
  struct stat before {};
  ASSERT_EQ(::stat(dir_.file("images/images.json").c_str(), &before), 0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store->pull(registry.host() + "/app:v1"));
  struct stat after {};
  ASSERT_EQ(::stat(dir_.file("images/images.json").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "rewritten (a new file is renamed in each time)";
  // The same image by digest is a new name: saved now.
  ASSERT_TRUE(store->pull(registry.host() + "/app@" + image.manifest_digest));
  ASSERT_EQ(::stat(dir_.file("images/images.json").c_str(), &after), 0);
  EXPECT_NE(after.st_ino, before.st_ino);
  auto reopened = open_store();
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->list().size(), 2u) << "the tag and the digest reference";
}

// Within its TTL a resolved tag is not asked for again, however the registry moves it.
// The TTL is long, so a loaded machine does the re-pulls well within it.
TEST_F(Pull, RecentlyResolvedTagSkipsTheRegistryWithinItsTtl) {
  TestRegistry registry;
  ASSERT_TRUE(registry.ok());
  TestImage v1 = make_image("ttl-one", 1), v2 = make_image("ttl-two", 1);
  ASSERT_TRUE(registry.push("app", "live", v1));
  testing::CountingProxy proxy(registry.host(), false, "");
  auto store = open_store({}, {}, 0, std::chrono::minutes(10));
  ASSERT_TRUE(store);
  auto first = store->pull(proxy.host() + "/app:live");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->digest, v1.manifest_digest);
  // The tag moves; within the TTL the store keeps what it resolved, asking nobody.
  ASSERT_TRUE(registry.push("app", "live", v2));
  proxy.reset();
  for (int i = 0; i < 3; ++i) {
    auto again = store->pull(proxy.host() + "/app:live");
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->digest, v1.manifest_digest);
  }
  EXPECT_EQ(proxy.count("GET", "/v2/"), 0) << "no request within the TTL";
  // A digest reference that is present never asks.
  auto pinned = store->pull(proxy.host() + "/app@" + v1.manifest_digest);
  ASSERT_TRUE(pinned) << pinned.error().message;
  EXPECT_EQ(proxy.count("GET", "/v2/"), 0);
}

// Once its TTL has passed (waited out: a lower bound, whatever the machine's load), the
// registry is asked again and the moved tag's new image comes.
TEST_F(Pull, AfterItsTtlATagIsResolvedAgain) {
  TestRegistry registry;
  ASSERT_TRUE(registry.ok());
  TestImage v1 = make_image("ttl-one", 1), v2 = make_image("ttl-two", 1);
  ASSERT_TRUE(registry.push("app", "live", v1));
  testing::CountingProxy proxy(registry.host(), false, "");
  auto store = open_store({}, {}, 0, std::chrono::milliseconds(200));
  ASSERT_TRUE(store);
  auto first = store->pull(proxy.host() + "/app:live");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->digest, v1.manifest_digest);
  ASSERT_TRUE(registry.push("app", "live", v2));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  proxy.reset();
  auto later = store->pull(proxy.host() + "/app:live");
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_EQ(later->digest, v2.manifest_digest);
  EXPECT_GE(proxy.count("GET", "/manifests/"), 1);
}

TEST_F(Pull, ConcurrentPullsShareDownloads) {
  TestRegistry registry;
  ASSERT_TRUE(registry.ok());
  TestImage image = make_image("shared", 4, MediaStyle::kOci, 200000);
  ASSERT_TRUE(registry.push("shared", "v1", image));
  testing::CountingProxy proxy(registry.host(), false, "");
  auto store = open_store();
  ASSERT_TRUE(store);
  std::vector<std::thread> threads;
  std::vector<Result<Image>> results(6);
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = store->pull(proxy.host() + "/shared:v1"); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->digest, image.manifest_digest);
    EXPECT_EQ(r->layer_dirs.size(), 4u);
  }
  for (const auto& layer : image.layers) {
    EXPECT_EQ(proxy.count("GET", "/blobs/" + layer.digest), 1) << layer.digest;
  }
  EXPECT_EQ(proxy.count("GET", "/blobs/" + image.config_digest), 1);
  EXPECT_EQ(unpacker_.calls, 4);
}

TEST_F(Pull, GcEvictsOldestUnusedNeverAcquired) {
  TestRegistry registry;
  ASSERT_TRUE(registry.ok());
  std::vector<TestImage> images;
  for (const char* name : {"one", "two", "three", "four"}) {
    images.push_back(make_image(name, 1, MediaStyle::kOci, 100000));
    ASSERT_TRUE(registry.push(name, "v1", images.back()));
  }
  // Room for about two and a half images.
  auto store = open_store({}, {}, 250000);
  ASSERT_TRUE(store);
  auto ref = [&](const std::string& name) { return registry.host() + "/" + name + ":v1"; };
  auto one = store->pull(ref("one"));
  ASSERT_TRUE(one) << one.error().message;
  store->acquire(one->digest);  // in use: oldest, but must stay
  ASSERT_TRUE(store->pull(ref("two")));
  ASSERT_TRUE(store->pull(ref("three")));  // over budget: "two" goes, "one" is in use
  auto names = [&] {
    std::set<std::string> out;
    for (const auto& info : store->list()) out.insert(info.reference);
    return out;
  };
  EXPECT_EQ(names(), (std::set<std::string>{ref("one"), ref("three")}));
  EXPECT_FALSE(exists("layers/" + images[1].layers[0].digest.substr(7)));
  EXPECT_FALSE(exists("blobs/sha256/" + images[1].config_digest.substr(7)));
  EXPECT_TRUE(exists("layers/" + images[0].layers[0].digest.substr(7)));

  store->release(one->digest);
  ASSERT_TRUE(store->pull(ref("three")));  // "three" is now the most recent
  ASSERT_TRUE(store->pull(ref("four")));   // evicts "one", the least recently used
  EXPECT_EQ(names(), (std::set<std::string>{ref("three"), ref("four")}));
  for (const auto& info : store->list()) EXPECT_FALSE(info.in_use);

  store->acquire(images[2].manifest_digest);
  auto freed = store->gc();
  ASSERT_TRUE(freed);
  EXPECT_EQ(*freed, 0u) << "under budget already";
}

}  // namespace
}  // namespace mill::image
