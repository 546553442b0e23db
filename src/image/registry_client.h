#pragma once

// A client of one registry over the OCI distribution API: manifests (by tag or
// digest, verified) and blobs (streamed to a sink, redirects followed). Auth is
// anonymous until the registry answers 401; then Basic (configured credentials) or
// the Bearer token flow (token from the challenge's realm, with the credentials when
// configured), tokens cached per scope until they expire.
//
// Scheme: HTTPS with verified certificates. Plain HTTP only when the registry is
// marked insecure (then HTTP only), or for loopback hosts (127.0.0.0/8, localhost,
// [::1]): those are tried over HTTPS first and, if the server does not speak TLS at
// all, over HTTP; what worked is remembered. A loopback registry whose certificate
// fails verification is an error, never a fallback.
//
// Thread-safe: parallel blob downloads share one client (and its tokens).

#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "common/result.h"
#include "net/http_client.h"

namespace mill::image {

struct RegistryCredentials {
  std::string username;
  std::string password;
  bool insecure = false;  // plain HTTP allowed (config: [registry."host"] insecure = true)
};

struct RegistryClientOptions {
  std::string registry;             // as in references, for messages: "docker.io", "127.0.0.1:5000"
  std::string endpoint;             // host[:port] to dial: "registry-1.docker.io"
  RegistryCredentials credentials;  // empty username: anonymous
  std::string ca_file;              // extra trusted CAs (tests)
  std::chrono::milliseconds timeout{30000};  // per request; for blobs, per piece
};

struct FetchedManifest {
  std::string bytes;
  std::string media_type;  // Content-Type without parameters
  std::string digest;      // sha256 of bytes
};

class RegistryClient {
 public:
  explicit RegistryClient(RegistryClientOptions options);

  // GET /v2/<repository>/manifests/<reference>. When reference is a digest the bytes
  // must hash to it; a Docker-Content-Digest header, if sent, must match too.
  Result<FetchedManifest> get_manifest(const std::string& repository, const std::string& reference);

  // GET /v2/<repository>/blobs/<digest>, following up to 5 redirects (Authorization
  // is dropped when a redirect leaves the registry's host). The body goes to sink as
  // it arrives; verifying it is the sink's job (BlobWriter does).
  Result<void> get_blob(const std::string& repository, const std::string& digest,
                        const net::BodySink& sink);

  const RegistryClientOptions& options() const { return options_; }

 private:
  enum class Scheme { kProbe, kHttps, kHttp };
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };

  // One request to the registry with auth: answers a 401 challenge once.
  Result<net::ClientResponse> send(const std::string& repository, net::ClientRequest req);
  // One request with the scheme rule applied.
  Result<net::ClientResponse> send_plain(net::ClientRequest req);
  Result<void> authenticate(const std::string& scope, const std::string& www_authenticate);
  Result<std::string> fetch_token(const std::string& realm, const std::string& service,
                                  const std::string& scope);
  std::string authorization(const std::string& scope);
  std::string prefix() const { return "registry " + options_.registry + ": "; }

  RegistryClientOptions options_;
  std::mutex mu_;
  Scheme scheme_;
  bool basic_ = false;                   // the registry asked for Basic auth
  std::map<std::string, Token> tokens_;  // by scope
};

}  // namespace mill::image
