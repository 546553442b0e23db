#include "image/registry_client.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "crypto/sha256.h"
#include "image/challenge.h"
#include "image/manifest.h"
#include "image/reference.h"
#include "net/http.h"

namespace mill::image {
namespace {

namespace json = boost::json;

constexpr int kMaxRedirects = 5;
constexpr size_t kMaxErrorBody = 64 * 1024;

struct Url {
  bool tls = true;
  std::string host;  // host[:port]
  std::string target = "/";
};

// "https://host[:port]/path?query" -> Url. Only http and https.
Result<Url> parse_url(std::string_view s) {
  Url u;
  if (s.starts_with("https://")) {
    s.remove_prefix(8);
  } else if (s.starts_with("http://")) {
    u.tls = false;
    s.remove_prefix(7);
  } else {
    return make_error(ErrorCode::kInvalidArgument, "not an http(s) URL: " + std::string(s));
  }
  size_t slash = s.find('/');
  u.host = std::string(s.substr(0, slash));
  if (slash != std::string_view::npos) u.target = std::string(s.substr(slash));
  if (u.host.empty()) return make_error(ErrorCode::kInvalidArgument, "URL without a host");
  return u;
}

std::string snippet(const std::string& body) {
  std::string s = body.substr(0, 200);
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

RegistryClient::RegistryClient(RegistryClientOptions options)
    : options_(std::move(options)),
      scheme_(options_.credentials.insecure         ? Scheme::kHttp
              : is_loopback_host(options_.endpoint) ? Scheme::kProbe
                                                    : Scheme::kHttps) {}

Result<net::ClientResponse> RegistryClient::send_plain(net::ClientRequest req) {
  Scheme scheme;
  {
    std::lock_guard lock(mu_);
    scheme = scheme_;
  }
  req.ca_file = options_.ca_file;
  req.tls = scheme != Scheme::kHttp;
  auto res = net::http_request(options_.endpoint, req);
  if (scheme != Scheme::kProbe) return res;
  if (res) {
    std::lock_guard lock(mu_);
    scheme_ = Scheme::kHttps;
    return res;
  }
  // Fall back to HTTP only when the server does not speak TLS, never when it does
  // but its certificate is not trusted.
  const std::string& msg = res.error().message;
  if (msg.find("TLS handshake") == std::string::npos ||
      msg.find("certificate") != std::string::npos) {
    return res;
  }
  req.tls = false;
  auto plain = net::http_request(options_.endpoint, req);
  if (plain) {
    std::lock_guard lock(mu_);
    scheme_ = Scheme::kHttp;
  }
  return plain;
}

std::string RegistryClient::authorization(const std::string& scope) {
  std::lock_guard lock(mu_);
  if (basic_ && !options_.credentials.username.empty()) {
    return "Basic " +
           base64_encode(options_.credentials.username + ":" + options_.credentials.password);
  }
  auto it = tokens_.find(scope);
  if (it != tokens_.end() && std::chrono::steady_clock::now() < it->second.expires) {
    return "Bearer " + it->second.value;
  }
  return {};
}

Result<net::ClientResponse> RegistryClient::send(const std::string& repository,
                                                 net::ClientRequest req) {
  const std::string scope = "repository:" + repository + ":pull";
  for (int attempt = 0;; ++attempt) {
    net::ClientRequest r = req;
    if (std::string auth = authorization(scope); !auth.empty()) {
      r.headers.push_back({"Authorization", auth});
    }
    auto res = MILL_TRY(send_plain(std::move(r)));
    if (res.status != 401) return res;
    if (attempt > 0) {
      return make_error(ErrorCode::kUnauthenticated, prefix() + "authentication failed (401)");
    }
    const std::string* challenge = res.header("WWW-Authenticate");
    if (challenge == nullptr) {
      return make_error(ErrorCode::kUnauthenticated,
                        prefix() + "authentication failed (401 without a challenge)");
    }
    MILL_TRY(authenticate(scope, *challenge));
  }
}

Result<void> RegistryClient::authenticate(const std::string& scope,
                                          const std::string& www_authenticate) {
  auto challenge = parse_auth_challenge(www_authenticate);
  if (!challenge) {
    return make_error(ErrorCode::kUnauthenticated, prefix() + challenge.error().message);
  }
  if (challenge->scheme == "basic") {
    if (options_.credentials.username.empty()) {
      return make_error(ErrorCode::kUnauthenticated,
                        prefix() + "authentication required (401) and no credentials configured");
    }
    std::lock_guard lock(mu_);
    basic_ = true;
    return {};
  }
  if (challenge->scheme != "bearer") {
    return make_error(ErrorCode::kUnauthenticated,
                      prefix() + "unsupported auth scheme '" + challenge->scheme + "'");
  }
  const std::string& realm = challenge->params["realm"];
  if (realm.empty()) {
    return make_error(ErrorCode::kUnauthenticated, prefix() + "Bearer challenge without a realm");
  }
  std::string asked = challenge->params.count("scope") ? challenge->params["scope"] : scope;
  MILL_TRY(fetch_token(realm, challenge->params["service"], asked));
  return {};
}

Result<std::string> RegistryClient::fetch_token(const std::string& realm,
                                                const std::string& service,
                                                const std::string& scope) {
  auto url = parse_url(realm);
  if (!url)
    return make_error(ErrorCode::kUnauthenticated,
                      prefix() + "token realm: " + url.error().message);
  if (!url->tls && !is_loopback_host(url->host) && !options_.credentials.insecure) {
    return make_error(
        ErrorCode::kUnauthenticated,
        prefix() + "refusing to send credentials to a plain-HTTP token realm " + realm);
  }
  net::ClientRequest req;
  req.tls = url->tls;
  req.ca_file = options_.ca_file;
  req.timeout = options_.timeout;
  req.max_body_bytes = 1024 * 1024;
  req.target = url->target + (url->target.find('?') == std::string::npos ? "?" : "&");
  if (!service.empty()) req.target += "service=" + net::percent_encode(service) + "&";
  req.target += "scope=" + net::percent_encode(scope);
  if (!options_.credentials.username.empty()) {
    req.headers.push_back(
        {"Authorization", "Basic " + base64_encode(options_.credentials.username + ":" +
                                                   options_.credentials.password)});
  }
  auto res = net::http_request(url->host, req);
  if (!res) {
    return make_error(res.error().code, prefix() + "token server: " + res.error().message);
  }
  if (res->status == 401 || res->status == 403) {
    return make_error(ErrorCode::kUnauthenticated, prefix() + "authentication failed (" +
                                                       std::to_string(res->status) +
                                                       " from the token server)");
  }
  if (res->status != 200) {
    return make_error(ErrorCode::kUnavailable, prefix() + "token server answered " +
                                                   std::to_string(res->status) + ": " +
                                                   snippet(res->body));
  }
  boost::system::error_code ec;
  json::value v = json::parse(res->body, ec);
  std::string token;
  int64_t expires_in = 60;  // the distribution token spec's default
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    for (const char* key : {"token", "access_token"}) {
      if (auto it = o.find(key); it != o.end() && it->value().is_string() && token.empty()) {
        token = std::string(it->value().as_string());
      }
    }
    if (auto it = o.find("expires_in"); it != o.end() && it->value().is_int64()) {
      expires_in = std::max<int64_t>(it->value().as_int64(), 1);
    }
  }
  if (token.empty()) {
    return make_error(ErrorCode::kUnauthenticated, prefix() + "token server sent no token");
  }
  // Renew a little early so a token does not expire between check and use.
  auto lifetime = std::chrono::seconds(expires_in) * 9 / 10;
  std::lock_guard lock(mu_);
  tokens_[scope] = Token{token, std::chrono::steady_clock::now() + lifetime};
  return token;
}

Result<FetchedManifest> RegistryClient::get_manifest(const std::string& repository,
                                                     const std::string& reference) {
  net::ClientRequest req;
  req.target = "/v2/" + repository + "/manifests/" + reference;
  req.headers.push_back({"Accept", manifest_accept_header()});
  req.timeout = options_.timeout;
  req.max_body_bytes = kMaxManifestBytes;
  auto res = MILL_TRY(send(repository, std::move(req)));
  const std::string what = repository + (is_valid_digest(reference) ? "@" : ":") + reference;
  if (res.status == 404) {
    return make_error(ErrorCode::kNotFound, prefix() + "manifest " + what + " not found");
  }
  if (res.status != 200) {
    return make_error(ErrorCode::kUnavailable, prefix() + "GET manifest " + what + " answered " +
                                                   std::to_string(res.status) + ": " +
                                                   snippet(res.body));
  }
  FetchedManifest out;
  out.digest = crypto::sha256_digest(res.body);
  if (is_valid_digest(reference) && out.digest != reference) {
    return make_error(
        ErrorCode::kInvalidArgument,
        prefix() + "manifest " + reference + " does not match its digest (got " + out.digest + ")");
  }
  if (const std::string* sent = res.header("Docker-Content-Digest");
      sent != nullptr && sent->starts_with("sha256:") && *sent != out.digest) {
    return make_error(ErrorCode::kInvalidArgument, prefix() + "manifest " + what + " hashes to " +
                                                       out.digest + ", the registry says " + *sent);
  }
  if (const std::string* type = res.header("Content-Type")) {
    out.media_type = type->substr(0, type->find(';'));
  }
  out.bytes = std::move(res.body);
  return out;
}

Result<void> RegistryClient::get_blob(const std::string& repository, const std::string& digest,
                                      const net::BodySink& sink) {
  net::ClientRequest req;
  req.target = "/v2/" + repository + "/blobs/" + digest;
  req.timeout = options_.timeout;
  req.body_sink = sink;
  req.max_body_bytes = kMaxErrorBody;
  auto res = MILL_TRY(send(repository, req));
  for (int hops = 0; is_redirect(res.status); ++hops) {
    const std::string* location = res.header("Location");
    if (hops == kMaxRedirects || location == nullptr) {
      return make_error(ErrorCode::kUnavailable,
                        prefix() + "blob " + digest + ": too many or broken redirects");
    }
    auto url = location->starts_with("/") ? Result<Url>(Url{true, options_.endpoint, *location})
                                          : parse_url(*location);
    if (url && url->host == options_.endpoint) {
      // Same host: the registry's scheme and auth still apply.
      req.target = url->target;
      res = MILL_TRY(send(repository, req));
      continue;
    }
    if (!url)
      return make_error(ErrorCode::kUnavailable,
                        prefix() + "blob redirect: " + url.error().message);
    if (!url->tls && !is_loopback_host(url->host) && !options_.credentials.insecure) {
      return make_error(ErrorCode::kUnavailable,
                        prefix() + "blob " + digest + " redirected to plain HTTP " + url->host);
    }
    net::ClientRequest hop = req;
    hop.target = url->target;
    hop.tls = url->tls;
    hop.ca_file = options_.ca_file;
    // Another host (a CDN, object storage) never sees the registry's credentials.
    res = MILL_TRY(net::http_request(url->host, hop));
  }
  if (res.status == 404) {
    return make_error(ErrorCode::kNotFound,
                      prefix() + "blob " + digest + " not found in " + repository);
  }
  if (res.status != 200) {
    return make_error(ErrorCode::kUnavailable, prefix() + "GET blob " + digest + " answered " +
                                                   std::to_string(res.status) + ": " +
                                                   snippet(res.body));
  }
  return {};
}

}  // namespace mill::image
