// HttpServer over TLS and http_request's HTTPS: trust pinned to a CA given in memory,
// IP SANs, client certificates (mTLS) and the peer identity, and everything plain HTTP
// does (keep-alive, limits, timeouts, long polls, streams, stop) over TLS. Certificates
// are made by the test (tests/support/test_certs.h); all on 127.0.0.1.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "net/http_client.h"
#include "net/http_server.h"
#include "support/eventually.h"
#include "support/temp_dir.h"
#include "support/test_certs.h"

namespace mill::net {
namespace {

using mill::testing::eventually;
using mill::testing::TestCa;
using mill::testing::TestCert;
using namespace std::chrono_literals;

int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};  // no read in these tests may hang the run
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// A hand-driven TLS client (OpenSSL on a blocking socket), for what http_request cannot
// show: several requests on one connection, the protocol version, hanging up mid-stream.
class RawTlsClient {
 public:
  RawTlsClient(uint16_t port, const std::string& ca_pem, const TestCert* cert = nullptr,
               int max_version = 0) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (max_version) SSL_CTX_set_max_proto_version(ctx_, max_version);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
    BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
    X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (ca) X509_STORE_add_cert(store, ca);
    X509_free(ca);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (cert) {
      bio = BIO_new_mem_buf(cert->cert_pem.data(), static_cast<int>(cert->cert_pem.size()));
      X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      BIO_free(bio);
      bio = BIO_new_mem_buf(cert->key_pem.data(), static_cast<int>(cert->key_pem.size()));
      EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
      BIO_free(bio);
      SSL_CTX_use_certificate(ctx_, x);
      SSL_CTX_use_PrivateKey(ctx_, key);
      X509_free(x);
      EVP_PKEY_free(key);
    }
    fd_ = connect_loopback(port);
    if (fd_ < 0) return;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1");
    connected_ = SSL_connect(ssl_) == 1;
  }
  ~RawTlsClient() { hang_up(); }

  bool connected() const { return connected_; }
  int version() const { return ssl_ ? SSL_version(ssl_) : 0; }

  bool send(const std::string& data) {
    return connected_ && SSL_write(ssl_, data.data(), static_cast<int>(data.size())) ==
                             static_cast<int>(data.size());
  }
  // Reads until `marker` has arrived (true) or the connection ends or stalls (false).
  bool read_until(const std::string& marker) {
    char buf[4096];
    while (received_.find(marker) == std::string::npos) {
      int n = connected_ ? SSL_read(ssl_, buf, sizeof buf) : 0;
      if (n <= 0) return false;
      received_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  const std::string& received() const { return received_; }

  // Without close_notify, as a crashed client would.
  void hang_up() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    if (ctx_) SSL_CTX_free(ctx_);
    ssl_ = nullptr;
    fd_ = -1;
    ctx_ = nullptr;
    connected_ = false;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
  std::string received_;
};

// What the handler saw, shared with callbacks that may outlive a test.
struct Seen {
  std::mutex mutex;
  std::condition_variable cv;
  int requests = 0;
  std::vector<std::string> remotes;
  std::string peer_identity = "<none>";
  bool gone = false;
  std::shared_ptr<ResponseWriter> writer;
};

class TlsServer : public ::testing::Test {
 protected:
  TlsServer()
      : ca_("mill test CA"),
        other_ca_("some other CA"),
        server_cert_(ca_.issue("mill server", TestCa::kServer, {"IP:127.0.0.1"})),
        node_cert_(ca_.issue("node-7", TestCa::kClient)),
        stranger_cert_(other_ca_.issue("node-7", TestCa::kClient)) {}

  void TearDown() override {
    if (server_) server_->stop();
    for (auto& t : threads_) t.join();
  }

  TlsServerConfig tls_config() const {
    TlsServerConfig tls;
    tls.cert_pem = server_cert_.cert_pem;
    tls.key_pem = server_cert_.key_pem;
    return tls;
  }

  void start(TlsServerConfig tls, HttpServerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    options.tls = std::move(tls);
    auto server = HttpServer::create(options, [this](const HttpRequest& r) { return handle(r); });
    ASSERT_TRUE(server.has_value()) << server.error().message;
    server_ = std::move(*server);
    server_->start();
  }

  // An HTTPS request that trusts only the test CA.
  ClientRequest request(std::string target, const TestCert* cert = nullptr) const {
    ClientRequest req;
    req.target = std::move(target);
    req.tls = true;
    req.ca_pem = ca_.pem();
    req.timeout = 10s;
    if (cert) {
      req.client_cert_pem = cert->cert_pem;
      req.client_key_pem = cert->key_pem;
    }
    return req;
  }

  HttpResponse handle(const HttpRequest& req) {
    {
      std::lock_guard lock(seen_->mutex);
      ++seen_->requests;
      seen_->remotes.push_back(req.remote);
      seen_->peer_identity = req.peer_identity;
    }
    HttpResponse res;
    if (req.path == "/later") {
      res.async = [this](std::shared_ptr<ResponseWriter> w) {
        threads_.emplace_back([w] {
          std::this_thread::sleep_for(50ms);
          HttpResponse r;
          r.status = 202;
          r.body = "{\"done\":true}";
          w->respond(std::move(r));
        });
      };
    } else if (req.path == "/stream") {
      res.async = [this](std::shared_ptr<ResponseWriter> w) {
        threads_.emplace_back([w] {
          w->begin_stream(200, "text/event-stream");
          for (int i = 0; i < 3; ++i) w->write("data: " + std::to_string(i) + "\n\n");
          w->close();
        });
      };
    } else if (req.path == "/never") {
      res.async = [seen = seen_](std::shared_ptr<ResponseWriter> w) {
        std::lock_guard lock(seen->mutex);
        seen->writer = w;
      };
    } else if (req.path == "/forever") {
      res.async = [seen = seen_](std::shared_ptr<ResponseWriter> w) {
        w->on_client_gone([seen] {
          std::lock_guard lock(seen->mutex);
          seen->gone = true;
          seen->cv.notify_all();
        });
        w->begin_stream(200, "text/event-stream");
        w->write("data: hello\n\n");
        std::lock_guard lock(seen->mutex);
        seen->writer = w;
      };
    } else {
      res.body =
          "{\"path\":\"" + req.path + "\",\"bytes\":" + std::to_string(req.body.size()) + "}";
    }
    return res;
  }

  int requests() {
    std::lock_guard lock(seen_->mutex);
    return seen_->requests;
  }
  std::string peer_identity() {
    std::lock_guard lock(seen_->mutex);
    return seen_->peer_identity;
  }
  bool has_writer() {
    std::lock_guard lock(seen_->mutex);
    return seen_->writer != nullptr;
  }

  TestCa ca_;
  TestCa other_ca_;
  TestCert server_cert_;
  TestCert node_cert_;      // clientAuth, CN node-7, from ca_
  TestCert stranger_cert_;  // the same CN from another CA
  std::unique_ptr<HttpServer> server_;
  std::shared_ptr<Seen> seen_ = std::make_shared<Seen>();
  std::vector<std::thread> threads_;
};

// --- trust: the pinned CA, IP SANs -------------------------------------------------

TEST_F(TlsServer, HttpsWorksWithThePinnedCa) {
  start(tls_config());
  auto res = http_request(server_->address(), request("/hello"));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "{\"path\":\"/hello\",\"bytes\":0}");
  // No client certificate asked for: no identity.
  EXPECT_EQ(peer_identity(), "");
  // The scheme in the address means TLS as well.
  ClientRequest req = request("/scheme");
  req.tls = false;
  res = http_request("https://" + server_->address(), req);
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
}

TEST_F(TlsServer, AnUntrustedCaIsRefusedWithTheReason) {
  start(tls_config());
  ClientRequest req = request("/");
  req.ca_pem = other_ca_.pem();
  auto res = http_request(server_->address(), req);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(res.error().message.find("certificate verify failed"), std::string::npos)
      << res.error().message;
  EXPECT_NE(res.error().message.find("unable to get local issuer certificate"), std::string::npos)
      << res.error().message;
  EXPECT_EQ(requests(), 0);
}

TEST_F(TlsServer, TheSystemStoreDoesNotTrustTheClusterCa) {
  start(tls_config());
  ClientRequest req = request("/");
  req.ca_pem.clear();
  auto res = http_request(server_->address(), req);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(res.error().message.find("certificate verify failed"), std::string::npos)
      << res.error().message;
}

// Pinning means only the given CAs: a certificate another trusted CA signed is refused.
TEST_F(TlsServer, PinningTrustsOnlyTheGivenCas) {
  TlsServerConfig tls = tls_config();
  TestCert by_other = other_ca_.issue("mill server", TestCa::kServer, {"IP:127.0.0.1"});
  tls.cert_pem = by_other.cert_pem;
  tls.key_pem = by_other.key_pem;
  start(tls);
  auto res = http_request(server_->address(), request("/"));
  ASSERT_FALSE(res.has_value());
  EXPECT_NE(res.error().message.find("unable to get local issuer certificate"), std::string::npos)
      << res.error().message;
  // Both CAs in the bundle: either verifies.
  ClientRequest both = request("/");
  both.ca_pem = ca_.pem() + other_ca_.pem();
  res = http_request(server_->address(), both);
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
}

// ca_pem replaces the system store rather than adding to it. OpenSSL's default store
// is where SSL_CERT_FILE says: pointed at the other CA, it trusts a server that CA
// signed, until ca_pem pins the cluster CA.
TEST_F(TlsServer, PinningIgnoresTheSystemStore) {
  TlsServerConfig tls = tls_config();
  TestCert by_other = other_ca_.issue("mill server", TestCa::kServer, {"IP:127.0.0.1"});
  tls.cert_pem = by_other.cert_pem;
  tls.key_pem = by_other.key_pem;
  start(tls);
  mill::testing::TempDir dir;
  std::string bundle = dir.file("system-ca.pem");
  {
    std::ofstream out(bundle);
    out << other_ca_.pem();
  }
  const char* was = std::getenv("SSL_CERT_FILE");
  std::optional<std::string> saved = was ? std::optional<std::string>(was) : std::nullopt;
  ::setenv("SSL_CERT_FILE", bundle.c_str(), 1);
  ClientRequest system_only = request("/");
  system_only.ca_pem.clear();
  auto trusted = http_request(server_->address(), system_only);
  auto pinned = http_request(server_->address(), request("/"));
  if (saved) {
    ::setenv("SSL_CERT_FILE", saved->c_str(), 1);
  } else {
    ::unsetenv("SSL_CERT_FILE");
  }
  ASSERT_TRUE(trusted.has_value()) << trusted.error().message;
  EXPECT_EQ(trusted->status, 200);
  ASSERT_FALSE(pinned.has_value());
  EXPECT_NE(pinned.error().message.find("unable to get local issuer certificate"),
            std::string::npos)
      << pinned.error().message;
}

TEST_F(TlsServer, TheCertificateMustNameTheIpConnectedTo) {
  TlsServerConfig tls = tls_config();
  TestCert elsewhere = ca_.issue("mill server", TestCa::kServer, {"IP:10.9.8.7", "DNS:node-1"});
  tls.cert_pem = elsewhere.cert_pem;
  tls.key_pem = elsewhere.key_pem;
  start(tls);
  auto res = http_request(server_->address(), request("/"));
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(res.error().message.find("IP address mismatch"), std::string::npos)
      << res.error().message;
}

TEST_F(TlsServer, AnIpSanDoesNotCoverAHostName) {
  start(tls_config());
  auto res = http_request("localhost:" + std::to_string(server_->port()), request("/"));
  ASSERT_FALSE(res.has_value());
  EXPECT_NE(res.error().message.find("hostname mismatch"), std::string::npos)
      << res.error().message;
}

TEST_F(TlsServer, PlainHttpAndTlsDoNotMix) {
  start(tls_config());
  ClientRequest plain;
  plain.target = "/";
  plain.timeout = 5s;
  auto res = http_request(server_->address(), plain);
  EXPECT_FALSE(res.has_value());
  EXPECT_EQ(requests(), 0);

  // And TLS to a plain server.
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  auto http = HttpServer::create(options, [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_TRUE(http.has_value()) << http.error().message;
  (*http)->start();
  res = http_request((*http)->address(), request("/"));
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(res.error().message.find("TLS handshake"), std::string::npos) << res.error().message;
  (*http)->stop();
}

TEST_F(TlsServer, SpeaksTls13AndStillTls12) {
  start(tls_config());
  RawTlsClient modern(server_->port(), ca_.pem());
  ASSERT_TRUE(modern.connected());
  EXPECT_EQ(modern.version(), TLS1_3_VERSION);
  RawTlsClient older(server_->port(), ca_.pem(), nullptr, TLS1_2_VERSION);
  ASSERT_TRUE(older.connected());
  EXPECT_EQ(older.version(), TLS1_2_VERSION);
  ASSERT_TRUE(older.send("GET /v12 HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(older.read_until("/v12\",\"bytes\":0}")) << older.received();
}

// --- client certificates -------------------------------------------------------------

TEST_F(TlsServer, RequiredClientCertificateGivesThePeerIdentity) {
  TlsServerConfig tls = tls_config();
  tls.client_ca_pem = ca_.pem();
  tls.require_client_cert = true;
  start(tls);
  auto res = http_request(server_->address(), request("/whoami", &node_cert_));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(peer_identity(), "node-7");
}

TEST_F(TlsServer, RequiredClientCertificateMissingFails) {
  TlsServerConfig tls = tls_config();
  tls.client_ca_pem = ca_.pem();
  tls.require_client_cert = true;
  start(tls);
  auto res = http_request(server_->address(), request("/whoami"));
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable) << res.error().message;
  EXPECT_EQ(requests(), 0);
  // The same over TLS 1.2, where the server refuses within the handshake.
  RawTlsClient older(server_->port(), ca_.pem(), nullptr, TLS1_2_VERSION);
  EXPECT_FALSE(older.connected());
  EXPECT_EQ(requests(), 0);
}

TEST_F(TlsServer, ClientCertificateFromAnotherCaFails) {
  TlsServerConfig tls = tls_config();
  tls.client_ca_pem = ca_.pem();
  tls.require_client_cert = true;
  start(tls);
  auto res = http_request(server_->address(), request("/whoami", &stranger_cert_));
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable) << res.error().message;
  EXPECT_EQ(requests(), 0);
}

TEST_F(TlsServer, OptionalClientCertificate) {
  TlsServerConfig tls = tls_config();
  tls.client_ca_pem = ca_.pem();
  start(tls);
  // None: served, without an identity.
  auto res = http_request(server_->address(), request("/anonymous"));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(peer_identity(), "");
  // A good one: its CN.
  res = http_request(server_->address(), request("/node", &node_cert_));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(peer_identity(), "node-7");
  // An invalid one is refused, not taken as "no certificate".
  res = http_request(server_->address(), request("/stranger", &stranger_cert_));
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(requests(), 2);
}

TEST_F(TlsServer, ClientCertificateOverTls12) {
  TlsServerConfig tls = tls_config();
  tls.client_ca_pem = ca_.pem();
  tls.require_client_cert = true;
  start(tls);
  RawTlsClient client(server_->port(), ca_.pem(), &node_cert_, TLS1_2_VERSION);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("GET /v12 HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(client.read_until("/v12\",\"bytes\":0}")) << client.received();
  EXPECT_EQ(peer_identity(), "node-7");
}

// Without client_ca_pem the server asks for no certificate: one a client has is not
// sent, and nobody gets an identity.
TEST_F(TlsServer, NoClientCaMeansNoIdentity) {
  start(tls_config());
  auto res = http_request(server_->address(), request("/", &node_cert_));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(peer_identity(), "");
}

TEST_F(TlsServer, AClientKeyThatDoesNotMatchIsAnError) {
  start(tls_config());
  ClientRequest req = request("/", &node_cert_);
  req.client_key_pem = stranger_cert_.key_pem;
  auto res = http_request(server_->address(), req);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kInvalidArgument) << res.error().message;
  req = request("/");
  req.ca_pem = "not a certificate";
  res = http_request(server_->address(), req);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kInvalidArgument) << res.error().message;
}

// --- what plain HTTP does, over TLS --------------------------------------------------

TEST_F(TlsServer, KeepAliveServesRequestsOnOneConnection) {
  start(tls_config());
  RawTlsClient client(server_->port(), ca_.pem());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(client.read_until("/one\",\"bytes\":0}")) << client.received();
  ASSERT_TRUE(client.send("POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
  ASSERT_TRUE(client.read_until("/two\",\"bytes\":3}")) << client.received();
  std::lock_guard lock(seen_->mutex);
  ASSERT_EQ(seen_->remotes.size(), 2u);
  EXPECT_EQ(seen_->remotes[0], seen_->remotes[1]);  // one connection, one handshake
}

TEST_F(TlsServer, OversizedBodyGets413) {
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  start(tls_config(), options);
  ClientRequest req = request("/upload");
  req.method = "POST";
  req.body = std::string(256 * 1024, 'x');
  auto res = http_request(server_->address(), req);
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 413);
  EXPECT_EQ(requests(), 0);
  // The limit is the limit, not less.
  req.body = std::string(1024, 'x');
  res = http_request(server_->address(), req);
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
}

TEST_F(TlsServer, OversizedHeadersGet431) {
  HttpServerOptions options;
  options.max_header_bytes = 4096;
  start(tls_config(), options);
  ClientRequest req = request("/");
  req.headers.push_back({"X-Big", std::string(8192, 'y')});
  auto res = http_request(server_->address(), req);
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 431);
}

TEST_F(TlsServer, LongPollAnswersLater) {
  start(tls_config());
  auto res = http_request(server_->address(), request("/later"));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 202);
  EXPECT_EQ(res->body, "{\"done\":true}");
}

TEST_F(TlsServer, ChunkedStreamDeliversEveryChunk) {
  start(tls_config());
  auto res = http_request(server_->address(), request("/stream"));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  // And piece by piece to a sink.
  std::string got;
  ClientRequest req = request("/stream");
  req.body_sink = [&got](std::string_view chunk) -> Result<void> {
    got += chunk;
    return {};
  };
  res = http_request(server_->address(), req);
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(got, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

TEST_F(TlsServer, StreamProducerLearnsWhenTheClientLeaves) {
  start(tls_config());
  RawTlsClient client(server_->port(), ca_.pem());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("GET /forever HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(client.read_until("data: hello")) << client.received();
  EXPECT_NE(client.received().find("Transfer-Encoding: chunked"), std::string::npos);
  client.hang_up();
  std::unique_lock lock(seen_->mutex);
  ASSERT_TRUE(seen_->cv.wait_for(lock, 10s, [&] { return seen_->gone; }));
  EXPECT_TRUE(seen_->writer->client_gone());
  EXPECT_FALSE(seen_->writer->write("data: late\n\n"));
}

TEST_F(TlsServer, StopEndsOpenStreamsAndLongPolls) {
  start(tls_config());
  std::promise<void> stream_done;
  std::promise<void> poll_done;
  std::jthread stream_client([&] {
    (void)http_request(server_->address(), request("/forever"));
    stream_done.set_value();
  });
  ASSERT_TRUE(eventually([&] { return has_writer(); }));
  std::shared_ptr<ResponseWriter> stream_writer;  // kept: its on_client_gone must run
  {
    std::lock_guard lock(seen_->mutex);
    stream_writer = std::move(seen_->writer);
    seen_->writer.reset();
  }
  std::jthread poll_client([&] {
    (void)http_request(server_->address(), request("/never"));
    poll_done.set_value();
  });
  ASSERT_TRUE(eventually([&] { return has_writer(); }));
  auto started = std::chrono::steady_clock::now();
  server_->stop(3000ms);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_EQ(stream_done.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(poll_done.get_future().wait_for(5s), std::future_status::ready);
  std::lock_guard lock(seen_->mutex);
  EXPECT_TRUE(seen_->gone);
}

// A client that connects and never starts the handshake holds its slot for the read
// timeout, no longer; others are served meanwhile.
TEST_F(TlsServer, SilentClientIsDroppedAfterTheReadTimeout) {
  HttpServerOptions options;
  options.read_timeout = 300ms;
  start(tls_config(), options);
  int fd = connect_loopback(server_->port());
  ASSERT_GE(fd, 0);
  auto started = std::chrono::steady_clock::now();
  auto res = http_request(server_->address(), request("/meanwhile"));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  char byte;
  ssize_t n = ::read(fd, &byte, 1);  // the server's close: EOF (or a reset)
  int err = errno;
  auto waited = std::chrono::steady_clock::now() - started;
  ::close(fd);
  EXPECT_TRUE(n == 0 || (n < 0 && err == ECONNRESET)) << "read " << n << " errno " << err;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 5s);
}

// The same for one that starts the handshake and stalls in the middle of it.
TEST_F(TlsServer, StalledHandshakeIsDroppedAfterTheReadTimeout) {
  HttpServerOptions options;
  options.read_timeout = 300ms;
  start(tls_config(), options);
  int fd = connect_loopback(server_->port());
  ASSERT_GE(fd, 0);
  // The first bytes of a TLS record header, then nothing.
  const unsigned char partial[] = {0x16, 0x03, 0x01};
  ASSERT_EQ(::write(fd, partial, sizeof partial), static_cast<ssize_t>(sizeof partial));
  auto started = std::chrono::steady_clock::now();
  char byte;
  ssize_t n = ::read(fd, &byte, 1);
  int err = errno;
  auto waited = std::chrono::steady_clock::now() - started;
  ::close(fd);
  EXPECT_TRUE(n == 0 || (n < 0 && err == ECONNRESET)) << "read " << n << " errno " << err;
  EXPECT_LT(waited, 5s);
}

// Clients close TLS without close_notify (http_request does, after each response):
// that ends the connection quietly, not with a 400 for a "malformed request" in the
// access log.
TEST_F(TlsServer, AClientHangingUpIsNotAMalformedRequest) {
  struct Log {
    std::mutex mutex;
    std::vector<int> statuses;
  };
  auto log = std::make_shared<Log>();
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.tls = tls_config();
  auto server = HttpServer::create(
      options, [](const HttpRequest&) { return HttpResponse{}; },
      [log](const AccessRecord& r) {
        std::lock_guard lock(log->mutex);
        log->statuses.push_back(r.status);
      });
  ASSERT_TRUE(server.has_value()) << server.error().message;
  server_ = std::move(*server);
  server_->start();
  for (int i = 0; i < 3; ++i) {
    auto res = http_request(server_->address(), request("/"));
    ASSERT_TRUE(res.has_value()) << res.error().message;
  }
  RawTlsClient client(server_->port(), ca_.pem());
  ASSERT_TRUE(client.connected());
  client.hang_up();
  // What would come comes within a moment: the server reads the close at once.
  std::this_thread::sleep_for(300ms);
  std::lock_guard lock(log->mutex);
  EXPECT_EQ(log->statuses, (std::vector<int>{200, 200, 200}));
}

// --- setup errors ----------------------------------------------------------------------

TEST_F(TlsServer, CreateRejectsBadPem) {
  auto create = [](TlsServerConfig tls) {
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.tls = std::move(tls);
    return HttpServer::create(options, [](const HttpRequest&) { return HttpResponse{}; });
  };
  auto expect_invalid = [&](TlsServerConfig tls, std::string_view words) {
    auto server = create(std::move(tls));
    ASSERT_FALSE(server.has_value());
    EXPECT_EQ(server.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(server.error().message.find(words), std::string::npos) << server.error().message;
  };
  TlsServerConfig bad = tls_config();
  bad.cert_pem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  expect_invalid(bad, "certificate");
  bad = tls_config();
  bad.key_pem = "garbage";
  expect_invalid(bad, "key");
  bad = tls_config();
  bad.key_pem = node_cert_.key_pem;  // another certificate's key
  expect_invalid(bad, "does not match");
  bad = tls_config();
  bad.client_ca_pem = "garbage";
  expect_invalid(bad, "client CA");
  bad = tls_config();
  bad.require_client_cert = true;
  expect_invalid(bad, "client_ca_pem");
  bad = tls_config();
  bad.cert_pem.clear();
  expect_invalid(bad, "certificate");
  // And a good one works.
  EXPECT_TRUE(create(tls_config()).has_value());
}

// --- the join flow's pin check ---------------------------------------------------------

TEST_F(TlsServer, FetchPeerChainReadsTheChainWithoutTrustOrRequest) {
  TlsServerConfig tls = tls_config();
  tls.cert_pem = server_cert_.cert_pem + ca_.pem();  // leaf, then the CA
  tls.client_ca_pem = ca_.pem();
  start(tls);
  auto chain = fetch_peer_chain_pem(server_->address(), 5s);
  ASSERT_TRUE(chain.has_value()) << chain.error().message;
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[0], server_cert_.cert_pem);
  EXPECT_EQ((*chain)[1], ca_.pem());
  // Also with the scheme, and from a server whose certificate nobody here trusts.
  chain = fetch_peer_chain_pem("https://" + server_->address(), 5s);
  ASSERT_TRUE(chain.has_value()) << chain.error().message;
  EXPECT_EQ(requests(), 0);  // no HTTP request was sent

  // The fetched CA then verifies the server.
  ClientRequest req = request("/joined", &node_cert_);
  req.ca_pem = chain->back();
  auto res = http_request(server_->address(), req);
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(peer_identity(), "node-7");
}

TEST_F(TlsServer, FetchPeerChainFromARequiringServer) {
  TlsServerConfig tls = tls_config();
  tls.client_ca_pem = ca_.pem();
  tls.require_client_cert = true;
  start(tls);
  auto chain = fetch_peer_chain_pem(server_->address(), 5s);
  ASSERT_TRUE(chain.has_value()) << chain.error().message;
  // OpenSSL completes a chain of one from the server's trust store (here the client CA,
  // which also issued the server's certificate), so the CA may come along.
  ASSERT_GE(chain->size(), 1u);
  EXPECT_EQ((*chain)[0], server_cert_.cert_pem);
  EXPECT_EQ(requests(), 0);
}

TEST(FetchPeerChain, FailsAgainstAPlainServer) {
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  auto http = HttpServer::create(options, [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_TRUE(http.has_value()) << http.error().message;
  (*http)->start();
  auto chain = fetch_peer_chain_pem((*http)->address(), 5s);
  ASSERT_FALSE(chain.has_value());
  EXPECT_EQ(chain.error().code, ErrorCode::kUnavailable);
  (*http)->stop();
}

}  // namespace
}  // namespace mill::net
