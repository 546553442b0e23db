#pragma once

// A real registry for tests: Debian's docker-registry (distribution 2.8) serving
// from a TempDir on 127.0.0.1 (a port it binds itself, read back from its log), optionally with TLS
// (a self-signed certificate for 127.0.0.1 made with the openssl CLI; ca_file() trusts it) and
// Basic auth (htpasswd -B). Killed when the object goes away.
//
// Also CountingProxy: an HTTP front for a registry that counts the requests it
// forwards, so a test can assert how many manifest or blob requests a pull made.

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "net/http_server.h"
#include "support/oci_image.h"
#include "support/temp_dir.h"

namespace mill::testing {

struct TestRegistryOptions {
  bool tls = false;
  std::string username;  // non-empty: Basic auth required
  std::string password;
};

class TestRegistry {
 public:
  explicit TestRegistry(TestRegistryOptions options = {});
  ~TestRegistry();
  TestRegistry(const TestRegistry&) = delete;
  TestRegistry& operator=(const TestRegistry&) = delete;

  // False (with a test failure already added) when the registry did not come up.
  bool ok() const { return pid_ > 0 && ready_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& ca_file() const { return ca_file_; }
  // Where its blobs and manifests are: a second registry process may serve them too
  // (to machines of a simulated cluster that cannot reach this one's loopback).
  std::string storage_dir() const { return dir_.file("storage"); }

  // Distribution API pushes (POST upload + PUT ?digest=, PUT manifest).
  ::testing::AssertionResult push_blob(const std::string& repo, const std::string& bytes);
  ::testing::AssertionResult push_manifest(const std::string& repo, const std::string& reference,
                                           const std::string& bytes, const std::string& media_type);
  // Config, layers, then the manifest under tag.
  ::testing::AssertionResult push(const std::string& repo, const std::string& tag,
                                  const TestImage& image);
  // Every image, each manifest by digest, then the index under tag.
  ::testing::AssertionResult push_index(const std::string& repo, const std::string& tag,
                                        const TestIndex& index);

  // Overwrites the stored blob so the registry serves bytes that do not match the
  // digest (keep the length equal: the registry sends the stored size).
  void tamper_blob(const std::string& digest, const std::string& bytes);

 private:
  struct Answer {
    int status = 0;
    std::string location;
    std::string error;
  };
  Answer call(const std::string& method, const std::string& target, const std::string& body,
              const std::string& content_type);

  TestRegistryOptions options_;
  TempDir dir_;
  std::string ca_file_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  bool ready_ = false;
};

// A registry one test suite shares, started by the first test that needs it, from its
// SetUp: `ASSERT_NO_FATAL_FAILURE(registry_.start(images))`. A registry that does not
// come up, or an image that does not push, fails that test (a failure in
// SetUpTestSuite would make gtest skip the whole suite, and a skip is not a failure).
// The suite's TearDownTestSuite calls stop().
class SuiteRegistry {
 public:
  struct Image {
    std::string repo;
    std::string tag;
    TestImage image;
  };
  // `images` is called only when the registry starts.
  void start(const std::function<std::vector<Image>()>& images);
  void stop() { registry_.reset(); }
  TestRegistry& operator*() const { return *registry_; }
  TestRegistry* operator->() const { return registry_.get(); }

 private:
  std::unique_ptr<TestRegistry> registry_;
};

class CountingProxy {
 public:
  // upstream: the registry's host:port; tls/ca_file: how to reach it.
  CountingProxy(std::string upstream, bool tls, std::string ca_file);
  ~CountingProxy();

  std::string host() const;  // "127.0.0.1:PORT", plain HTTP
  // Requests forwarded whose method and path match, e.g. ("GET", "/manifests/").
  int count(const std::string& method, const std::string& path_part) const;
  void reset();

 private:
  std::string upstream_;
  bool tls_;
  std::string ca_file_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> seen_;  // method, path
  std::unique_ptr<net::HttpServer> server_;
};

}  // namespace mill::testing
