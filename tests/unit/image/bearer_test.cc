// The Bearer token flow and blob redirects, against fakes of a remote registry built
// on net::HttpServer (docker-registry's simple configs have no token server).

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>

#include "image/image_store.h"
#include "net/http_server.h"
#include "support/oci_image.h"
#include "support/temp_dir.h"

namespace mill::image {
namespace {

using testing::LayerEntry;

std::unique_ptr<net::HttpServer> serve(net::Handler handler) {
  net::HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  auto server = net::HttpServer::create(o, std::move(handler));
  EXPECT_TRUE(server) << server.error().to_string();
  if (!server) return nullptr;
  (*server)->start();
  return std::move(*server);
}

class Bearer : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::ImageSpec spec;
    spec.entrypoint = {"/token-app"};
    spec.layers = {testing::build_layer({LayerEntry::file("a", "first")}),
                   testing::build_layer({LayerEntry::file("b", "second")})};
    image_ = testing::build_image(spec);

    token_server_ = serve([this](const net::HttpRequest& req) {
      ++token_requests_;
      net::HttpResponse res;
      const std::string* auth = req.header("Authorization");
      // "deploy:pw"
      if (auth == nullptr || *auth != "Basic ZGVwbG95OnB3") {
        res.status = 401;
        return res;
      }
      {
        std::lock_guard lock(mu_);
        scopes_.push_back(req.query_param("scope"));
      }
      EXPECT_EQ(req.query_param("service"), "fake-registry");
      res.body = R"({"access_token":"tok-123","expires_in":300})";
      return res;
    });
    blob_host_ = serve([this](const net::HttpRequest& req) {
      net::HttpResponse res;
      if (req.header("Authorization") != nullptr) ++blob_host_saw_auth_;
      for (const auto& layer : image_.layers) {
        if (req.path == "/storage/" + layer.digest) {
          res.content_type = "application/octet-stream";
          res.body = layer.bytes;
          return res;
        }
      }
      res.status = 404;
      return res;
    });
    registry_ = serve([this](const net::HttpRequest& req) {
      net::HttpResponse res;
      const std::string* auth = req.header("Authorization");
      if (auth == nullptr || *auth != "Bearer tok-123") {
        res.status = 401;
        res.headers.push_back(
            {"WWW-Authenticate",
             "Bearer realm=\"http://" + token_server_->address() +
                 "/token\",service=\"fake-registry\",scope=\"repository:app:pull\""});
        return res;
      }
      if (req.path == "/v2/app/manifests/v1") {
        res.content_type = image_.manifest_media_type;
        res.body = image_.manifest;
      } else if (req.path == "/v2/app/blobs/" + image_.config_digest) {
        res.content_type = "application/octet-stream";
        res.body = image_.config;
      } else if (req.path.starts_with("/v2/app/blobs/")) {
        res.status = 307;
        res.headers.push_back(
            {"Location", "http://" + blob_host_->address() + "/storage/" + req.path.substr(14)});
      } else {
        res.status = 404;
      }
      return res;
    });
    ASSERT_TRUE(token_server_ && blob_host_ && registry_);
  }

  std::unique_ptr<ImageStore> open_store(std::string password) {
    ImageStoreOptions o;
    o.root = dir_.file("images");
    o.unpack = [](const LayerReader& read, const std::string&) -> Result<void> {
      while (!MILL_TRY(read()).empty()) {
      }
      return {};
    };
    o.credentials = [password](const std::string&) {
      return std::optional<RegistryCredentials>(RegistryCredentials{"deploy", password});
    };
    return std::move(*ImageStore::open(std::move(o)));
  }

  testing::TempDir dir_;
  testing::TestImage image_;
  std::mutex mu_;
  std::vector<std::string> scopes_;
  std::atomic<int> token_requests_{0};
  std::atomic<int> blob_host_saw_auth_{0};
  std::unique_ptr<net::HttpServer> token_server_, blob_host_, registry_;
};

TEST_F(Bearer, TokenFlowAndRedirectedBlobs) {
  auto store = open_store("pw");
  auto pulled = store->pull(registry_->address() + "/app:v1");
  ASSERT_TRUE(pulled) << pulled.error().message;
  EXPECT_EQ(pulled->config.entrypoint, std::vector<std::string>{"/token-app"});
  ASSERT_EQ(pulled->layer_dirs.size(), 2u);
  EXPECT_EQ(token_requests_, 1) << "the token is cached for its scope";
  EXPECT_EQ(scopes_, std::vector<std::string>{"repository:app:pull"});
  EXPECT_EQ(blob_host_saw_auth_, 0) << "credentials never follow a redirect to another host";
}

TEST_F(Bearer, WrongPasswordNamesTheRegistry) {
  auto store = open_store("nope");
  auto pulled = store->pull(registry_->address() + "/app:v1");
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(pulled.error().message, "pull " + registry_->address() + "/app:v1: registry " +
                                        registry_->address() +
                                        ": authentication failed (401 from the token server)");
}

}  // namespace
}  // namespace mill::image
