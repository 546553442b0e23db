#include "support/test_registry.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "image/challenge.h"
#include "net/http.h"
#include "net/http_client.h"

namespace mill::testing {
namespace {

// The port the registry says it listens on ("listening on 127.0.0.1:PORT"), 0 until it
// has said so. It is given port 0 and binds a free one itself: no other process can
// take the port between a pick and the bind.
uint16_t listening_port(const std::string& log) {
  const std::string marker = "listening on 127.0.0.1:";
  size_t at = log.find(marker);
  if (at == std::string::npos) return 0;
  return static_cast<uint16_t>(std::atoi(log.c_str() + at + marker.size()));
}

bool run(const std::string& command) { return std::system(command.c_str()) == 0; }

}  // namespace

TestRegistry::TestRegistry(TestRegistryOptions options) : options_(std::move(options)) {
  // Level info: the registry logs the port it bound at that level.
  std::string config = "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n";
  config += "storage:\n  filesystem:\n    rootdirectory: " + dir_.file("storage") + "\n";
  config += "  delete:\n    enabled: true\n";
  config += "http:\n  addr: 127.0.0.1:0\n  secret: test-secret\n";
  if (options_.tls) {
    std::string cert = dir_.file("cert.pem");
    std::string key = dir_.file("key.pem");
    if (!run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
             key + " -out " + cert + " 2>/dev/null")) {
      ADD_FAILURE() << "openssl could not make a certificate";
      return;
    }
    ca_file_ = cert;
    config += "  tls:\n    certificate: " + cert + "\n    key: " + key + "\n";
  }
  if (!options_.username.empty()) {
    if (!run("htpasswd -Bbn '" + options_.username + "' '" + options_.password + "' > " +
             dir_.file("htpasswd"))) {
      ADD_FAILURE() << "htpasswd failed";
      return;
    }
    config +=
        "auth:\n  htpasswd:\n    realm: test-realm\n    path: " + dir_.file("htpasswd") + "\n";
  }
  std::ofstream(dir_.file("config.yml")) << config;

  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
    std::string log = dir_.file("registry.log");
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    if (f != nullptr) ::dup2(::fileno(stdout), STDERR_FILENO);
    std::string cfg = dir_.file("config.yml");
    ::execl("/usr/bin/docker-registry", "docker-registry", "serve", cfg.c_str(), nullptr);
    ::_exit(127);
  }
  if (pid_ < 0) {
    ADD_FAILURE() << "fork failed";
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream log(dir_.file("registry.log"));
      std::string text((std::istreambuf_iterator<char>(log)), {});
      ADD_FAILURE() << "docker-registry exited: " << text;
      return;
    }
    if (port_ == 0) {
      std::ifstream log(dir_.file("registry.log"));
      port_ = listening_port(std::string((std::istreambuf_iterator<char>(log)), {}));
      if (port_ == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
    }
    net::ClientRequest req;
    req.target = "/v2/";
    req.tls = options_.tls;
    req.ca_file = ca_file_;
    req.timeout = std::chrono::milliseconds(1000);
    auto res = net::http_request(host(), req);
    if (res && (res->status == 200 || res->status == 401)) {
      ready_ = true;
      return;
    }
    // Polling for readiness, not asserting on time.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::ifstream log(dir_.file("registry.log"));
  ADD_FAILURE() << "docker-registry did not become ready on " << host() << ":\n"
                << std::string((std::istreambuf_iterator<char>(log)), {});
}

void SuiteRegistry::start(const std::function<std::vector<Image>()>& images) {
  if (registry_) return;
  auto registry = std::make_unique<TestRegistry>();
  ASSERT_TRUE(registry->ok());
  for (const auto& [repo, tag, image] : images()) {
    ASSERT_TRUE(registry->push(repo, tag, image));
  }
  registry_ = std::move(registry);
}

TestRegistry::~TestRegistry() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

TestRegistry::Answer TestRegistry::call(const std::string& method, const std::string& target,
                                        const std::string& body, const std::string& content_type) {
  net::ClientRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  req.content_type = content_type;
  req.tls = options_.tls;
  req.ca_file = ca_file_;
  if (!options_.username.empty()) {
    req.headers.push_back(
        {"Authorization",
         "Basic " + image::base64_encode(options_.username + ":" + options_.password)});
  }
  auto res = net::http_request(host(), req);
  Answer out;
  if (!res) {
    out.error = res.error().to_string();
    return out;
  }
  out.status = res->status;
  if (const std::string* loc = res->header("Location")) out.location = *loc;
  if (out.status / 100 != 2) out.error = res->body;
  return out;
}

::testing::AssertionResult TestRegistry::push_blob(const std::string& repo,
                                                   const std::string& bytes) {
  Answer start = call("POST", "/v2/" + repo + "/blobs/uploads/", "", "");
  if (start.status != 202) {
    return ::testing::AssertionFailure() << "upload start: " << start.status << " " << start.error;
  }
  std::string target = start.location;
  if (size_t scheme = target.find("://"); scheme != std::string::npos) {
    target = target.substr(target.find('/', scheme + 3));
  }
  target += (target.find('?') == std::string::npos ? "?" : "&");
  target += "digest=" + net::percent_encode(test_sha256_digest(bytes));
  Answer put = call("PUT", target, bytes, "application/octet-stream");
  if (put.status != 201) {
    return ::testing::AssertionFailure() << "upload put: " << put.status << " " << put.error;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult TestRegistry::push_manifest(const std::string& repo,
                                                       const std::string& reference,
                                                       const std::string& bytes,
                                                       const std::string& media_type) {
  Answer put = call("PUT", "/v2/" + repo + "/manifests/" + reference, bytes, media_type);
  if (put.status != 201) {
    return ::testing::AssertionFailure() << "manifest put: " << put.status << " " << put.error;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult TestRegistry::push(const std::string& repo, const std::string& tag,
                                              const TestImage& image) {
  if (auto r = push_blob(repo, image.config); !r) return r;
  for (const auto& layer : image.layers) {
    if (auto r = push_blob(repo, layer.bytes); !r) return r;
  }
  return push_manifest(repo, tag, image.manifest, image.manifest_media_type);
}

::testing::AssertionResult TestRegistry::push_index(const std::string& repo, const std::string& tag,
                                                    const TestIndex& index) {
  for (const auto& image : index.images) {
    if (auto r = push(repo, image.manifest_digest, image); !r) return r;
  }
  return push_manifest(repo, tag, index.bytes, index.media_type);
}

void TestRegistry::tamper_blob(const std::string& digest, const std::string& bytes) {
  std::string hex = digest.substr(7);
  std::string path = dir_.file("storage/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" +
                               hex + "/data");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) ADD_FAILURE() << "cannot tamper with " << path;
}

CountingProxy::CountingProxy(std::string upstream, bool tls, std::string ca_file)
    : upstream_(std::move(upstream)), tls_(tls), ca_file_(std::move(ca_file)) {
  net::HttpServerOptions opts;
  opts.listen = "127.0.0.1:0";
  auto server = net::HttpServer::create(opts, [this](const net::HttpRequest& in) {
    {
      std::lock_guard lock(mu_);
      seen_.emplace_back(in.method, in.path);
    }
    net::ClientRequest req;
    req.method = in.method;
    req.target = in.target;
    req.body = in.body;
    req.tls = tls_;
    req.ca_file = ca_file_;
    for (const auto& h : in.headers) {
      if (net::iequals(h.name, "Authorization") || net::iequals(h.name, "Accept")) {
        req.headers.push_back(h);
      }
    }
    net::HttpResponse out;
    auto res = net::http_request(upstream_, req);
    if (!res) {
      out.status = 502;
      out.body = res.error().message;
      return out;
    }
    out.status = res->status;
    out.body = std::move(res->body);
    out.content_type = "";
    for (const auto& h : res->headers) {
      if (net::iequals(h.name, "Content-Type")) {
        out.content_type = h.value;
      } else if (net::iequals(h.name, "Docker-Content-Digest") ||
                 net::iequals(h.name, "WWW-Authenticate") || net::iequals(h.name, "Location")) {
        out.headers.push_back(h);
      }
    }
    return out;
  });
  if (!server) {
    ADD_FAILURE() << server.error().to_string();
    return;
  }
  server_ = std::move(*server);
  server_->start();
}

CountingProxy::~CountingProxy() {
  if (server_) server_->stop();
}

std::string CountingProxy::host() const { return "127.0.0.1:" + std::to_string(server_->port()); }

int CountingProxy::count(const std::string& method, const std::string& path_part) const {
  std::lock_guard lock(mu_);
  int n = 0;
  for (const auto& [m, p] : seen_) {
    if (m == method && p.find(path_part) != std::string::npos) ++n;
  }
  return n;
}

void CountingProxy::reset() {
  std::lock_guard lock(mu_);
  seen_.clear();
}

}  // namespace mill::testing
