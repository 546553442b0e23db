#include "crypto/cluster_ca.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace mill::crypto {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

// --- OpenSSL helpers, so the tests read what we made with OpenSSL itself ---

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PKeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PKey = std::unique_ptr<EVP_PKEY, PKeyFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

X509Ptr openssl_cert(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

PKey openssl_public_key(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return PKey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
}

std::string pubkey_pem_of(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

bool is_lower_hex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// --- fixtures ---

ClusterCa new_ca() {
  auto ca = make_cluster_ca();
  EXPECT_TRUE(ca) << ca.error().to_string();
  return *ca;
}

SignRequest node_request(std::string cn = "node-1", CertUsage usage = CertUsage::kBoth) {
  auto key = make_key();
  EXPECT_TRUE(key) << key.error().to_string();
  auto pub = public_key_pem(*key);
  EXPECT_TRUE(pub) << pub.error().to_string();
  SignRequest req;
  req.common_name = std::move(cn);
  req.public_key_pem = *pub;
  req.dns_names = {"node-1.mill.internal", "localhost"};
  req.ip_addresses = {"10.0.0.5", "127.0.0.1", "fd00::1"};
  req.usage = usage;
  req.validity = 24h * 365;
  return req;
}

std::string sign_ok(const ClusterCa& ca, const SignRequest& req) {
  auto cert = sign_certificate(ca, req);
  EXPECT_TRUE(cert) << cert.error().to_string();
  return cert ? *cert : "";
}

void expect_error(const Result<void>& r, ErrorCode code, const std::string& fragment) {
  ASSERT_FALSE(r) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(r.error().code, code) << r.error().to_string();
  EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().to_string();
}

template <class T>
void expect_error(const Result<T>& r, ErrorCode code, const std::string& fragment) {
  ASSERT_FALSE(r) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(r.error().code, code) << r.error().to_string();
  EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().to_string();
}

// --- the CA ---

TEST(ClusterCa, IsASelfSignedP256CaForTenYears) {
  ClusterCa ca = new_ca();
  EXPECT_TRUE(ca.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
  EXPECT_TRUE(ca.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n")) << "PKCS#8 PEM";

  X509Ptr cert = openssl_cert(ca.cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())), 0);
  EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(cert.get())), 1) << "self-signed";

  // basicConstraints CA:TRUE, critical.
  int crit = -1;
  auto* bc = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert.get(), NID_basic_constraints, &crit, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_TRUE(bc->ca);
  EXPECT_EQ(crit, 1);
  BASIC_CONSTRAINTS_free(bc);

  // keyUsage keyCertSign|cRLSign only.
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  int index = X509_get_ext_by_NID(cert.get(), NID_key_usage, -1);
  ASSERT_GE(index, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(cert.get(), index)), 1);

  // EC P-256.
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  EXPECT_EQ(EVP_PKEY_is_a(key, "EC"), 1);
  char group[64];
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key, group, sizeof group, &len), 1);
  EXPECT_EQ(std::string(group), "prime256v1");

  auto info = certificate_info(ca.cert_pem);
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->common_name, "mill cluster CA");
  auto now = Clock::now();
  EXPECT_LE(info->not_before, now);
  EXPECT_GT(info->not_before, now - 1h);
  auto years = std::chrono::duration_cast<std::chrono::hours>(info->not_after - info->not_before);
  EXPECT_GE(years, 24h * 3652);
  EXPECT_LE(years, 24h * 3653);
  EXPECT_TRUE(info->dns_names.empty());
  EXPECT_TRUE(info->ip_addresses.empty());
}

TEST(ClusterCa, SerialsAreRandom128Bit) {
  auto a = certificate_info(new_ca().cert_pem);
  auto b = certificate_info(new_ca().cert_pem);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->serial_hex, b->serial_hex);
  for (const auto& serial : {a->serial_hex, b->serial_hex}) {
    EXPECT_TRUE(is_lower_hex(serial)) << serial;
    EXPECT_LE(serial.size(), 32u) << serial;  // at most 128 bits
    EXPECT_GE(serial.size(), 20u) << serial;  // leading zero bytes are 1 in 2^48 unlikely
  }
}

TEST(ClusterCa, SerialHexMatchesOpenssl) {
  ClusterCa ca = new_ca();
  X509Ptr cert = openssl_cert(ca.cert_pem);
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string expected(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  for (char& c : expected) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(certificate_info(ca.cert_pem)->serial_hex, expected);
}

TEST(ClusterCa, KeysArePkcs8P256AndPublicKeyMatches) {
  auto key = make_key();
  ASSERT_TRUE(key) << key.error().to_string();
  EXPECT_TRUE(key->starts_with("-----BEGIN PRIVATE KEY-----\n"));
  auto pub = public_key_pem(*key);
  ASSERT_TRUE(pub) << pub.error().to_string();
  EXPECT_TRUE(pub->starts_with("-----BEGIN PUBLIC KEY-----\n"));

  Bio bio(BIO_new_mem_buf(key->data(), static_cast<int>(key->size())));
  PKey priv(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(priv);
  EXPECT_EQ(EVP_PKEY_get_bits(priv.get()), 256);
  EXPECT_EQ(pubkey_pem_of(priv.get()), *pub);
  EXPECT_NE(*make_key(), *key);
}

// --- node certificates ---

TEST(ClusterCa, NodeCertificateVerifiesForEveryUsage) {
  ClusterCa ca = new_ca();
  std::string cert = sign_ok(ca, node_request());
  for (CertUsage usage : {CertUsage::kServer, CertUsage::kClient, CertUsage::kBoth}) {
    auto ok = verify_certificate(ca.cert_pem, cert, usage);
    EXPECT_TRUE(ok) << ok.error().to_string();
  }
}

TEST(ClusterCa, NodeCertificateCarriesTheRequestedNamesAndKey) {
  ClusterCa ca = new_ca();
  SignRequest req = node_request("node-7");
  std::string pem = sign_ok(ca, req);

  auto info = certificate_info(pem);
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->common_name, "node-7");
  EXPECT_EQ(info->dns_names, (std::vector<std::string>{"node-1.mill.internal", "localhost"}));
  EXPECT_EQ(info->ip_addresses, (std::vector<std::string>{"10.0.0.5", "127.0.0.1", "fd00::1"}));
  EXPECT_EQ(info->not_after - info->not_before, 24h * 365);
  EXPECT_NE(info->serial_hex, certificate_info(ca.cert_pem)->serial_hex);

  // The same, read by OpenSSL.
  X509Ptr cert = openssl_cert(pem);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_host(cert.get(), "node-1.mill.internal", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "node-2.mill.internal", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.5", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "fd00::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.6", 0), 0);
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof cn);
  EXPECT_EQ(std::string(cn), "node-7");
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(cert.get()),
                          X509_get_subject_name(openssl_cert(ca.cert_pem).get())),
            0);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()),
            static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT));
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  PKey requested = openssl_public_key(req.public_key_pem);
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), requested.get()), 1);
  EXPECT_NE(X509_get0_subject_key_id(cert.get()), nullptr);
  EXPECT_NE(X509_get0_authority_key_id(cert.get()), nullptr);
}

TEST(ClusterCa, EkuFollowsUsage) {
  ClusterCa ca = new_ca();
  X509Ptr server = openssl_cert(sign_ok(ca, node_request("s", CertUsage::kServer)));
  X509Ptr client = openssl_cert(sign_ok(ca, node_request("c", CertUsage::kClient)));
  EXPECT_EQ(X509_get_extended_key_usage(server.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_get_extended_key_usage(client.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));
}

TEST(ClusterCa, NoSubjectAltNamesWhenNoneAsked) {
  ClusterCa ca = new_ca();
  SignRequest req = node_request("client-only", CertUsage::kClient);
  req.dns_names.clear();
  req.ip_addresses.clear();
  std::string pem = sign_ok(ca, req);
  X509Ptr cert = openssl_cert(pem);
  EXPECT_LT(X509_get_ext_by_NID(cert.get(), NID_subject_alt_name, -1), 0);
  EXPECT_TRUE(verify_certificate(ca.cert_pem, pem, CertUsage::kClient));
}

TEST(ClusterCa, AnotherCaRefusesTheCertificate) {
  ClusterCa ca = new_ca();
  ClusterCa other = new_ca();
  std::string cert = sign_ok(ca, node_request());
  auto r = verify_certificate(other.cert_pem, cert, CertUsage::kBoth);
  expect_error(r, ErrorCode::kUnauthenticated, "not issued by this CA");
  EXPECT_NE(r.error().message.find("'node-1'"), std::string::npos) << r.error().message;
}

TEST(ClusterCa, UsageMustMatch) {
  ClusterCa ca = new_ca();
  std::string client = sign_ok(ca, node_request("c", CertUsage::kClient));
  std::string server = sign_ok(ca, node_request("s", CertUsage::kServer));
  EXPECT_TRUE(verify_certificate(ca.cert_pem, client, CertUsage::kClient));
  EXPECT_TRUE(verify_certificate(ca.cert_pem, server, CertUsage::kServer));
  EXPECT_FALSE(verify_certificate(ca.cert_pem, client, CertUsage::kServer));
  EXPECT_FALSE(verify_certificate(ca.cert_pem, client, CertUsage::kBoth));
  EXPECT_FALSE(verify_certificate(ca.cert_pem, server, CertUsage::kClient));
  auto r = verify_certificate(ca.cert_pem, server, CertUsage::kBoth);
  expect_error(r, ErrorCode::kUnauthenticated, "extendedKeyUsage");
  expect_error(verify_certificate(ca.cert_pem, client, CertUsage::kServer),
               ErrorCode::kUnauthenticated, "purpose");
}

TEST(ClusterCa, ExpiredCertificateIsRefused) {
  ClusterCa ca = new_ca();
  SignRequest req = node_request();
  req.not_before = Clock::now() - 48h;
  req.validity = 24h;
  expect_error(verify_certificate(ca.cert_pem, sign_ok(ca, req), CertUsage::kBoth),
               ErrorCode::kUnauthenticated, "expired");

  // One that expired a minute ago (inside the CA's own validity, which starts 5 minutes
  // back) was fine while it lasted.
  req.not_before = Clock::now() - 3min;
  req.validity = 2min;
  std::string expired = sign_ok(ca, req);
  expect_error(verify_certificate(ca.cert_pem, expired, CertUsage::kBoth),
               ErrorCode::kUnauthenticated, "expired");
  EXPECT_TRUE(verify_certificate(ca.cert_pem, expired, CertUsage::kBoth, Clock::now() - 2min));
}

TEST(ClusterCa, VerifyHonoursNow) {
  ClusterCa ca = new_ca();
  std::string cert = sign_ok(ca, node_request());
  auto info = certificate_info(cert);
  ASSERT_TRUE(info);
  EXPECT_TRUE(verify_certificate(ca.cert_pem, cert, CertUsage::kBoth, info->not_after - 1min));
  expect_error(verify_certificate(ca.cert_pem, cert, CertUsage::kBoth, info->not_after + 1min),
               ErrorCode::kUnauthenticated, "expired");
  expect_error(verify_certificate(ca.cert_pem, cert, CertUsage::kBoth, info->not_before - 1min),
               ErrorCode::kUnauthenticated, "not yet valid");
  // The default start is a few minutes back, for clocks that lag.
  EXPECT_LT(info->not_before, Clock::now() - 1min);
}

TEST(ClusterCa, TheCaItselfIsNoNodeCertificate) {
  ClusterCa ca = new_ca();
  expect_error(verify_certificate(ca.cert_pem, ca.cert_pem, CertUsage::kServer),
               ErrorCode::kUnauthenticated, "CA certificate");
}

TEST(ClusterCa, ANodeCannotActAsTheCa) {
  ClusterCa ca = new_ca();
  auto key = make_key();
  SignRequest req = node_request();
  req.public_key_pem = *public_key_pem(*key);
  ClusterCa node{sign_ok(ca, req), *key};
  expect_error(sign_certificate(node, node_request("node-2")), ErrorCode::kInvalidArgument,
               "not a CA");
}

TEST(ClusterCa, BadRequestsAreRefused) {
  ClusterCa ca = new_ca();
  auto with = [&](auto change) {
    SignRequest req = node_request();
    change(req);
    return sign_certificate(ca, req);
  };
  expect_error(with([](SignRequest& r) { r.common_name = ""; }), ErrorCode::kInvalidArgument,
               "common name");
  expect_error(with([](SignRequest& r) { r.common_name = std::string(65, 'n'); }),
               ErrorCode::kInvalidArgument, "common name");
  expect_error(with([](SignRequest& r) { r.common_name = "a\nb"; }), ErrorCode::kInvalidArgument,
               "control character");
  expect_error(with([](SignRequest& r) { r.validity = 0s; }), ErrorCode::kInvalidArgument,
               "validity");
  expect_error(with([](SignRequest& r) { r.validity = -24h; }), ErrorCode::kInvalidArgument,
               "validity");
  expect_error(with([](SignRequest& r) { r.validity = std::chrono::years(1000); }),
               ErrorCode::kInvalidArgument, "at most 100 years");
  expect_error(with([](SignRequest& r) {
                 r.dns_names = {"ok.example", "bad,IP:1.2.3.4"};
               }),
               ErrorCode::kInvalidArgument, "'bad,IP:1.2.3.4'");
  expect_error(with([](SignRequest& r) { r.dns_names = {""}; }), ErrorCode::kInvalidArgument,
               "DNS name");
  expect_error(with([](SignRequest& r) { r.ip_addresses = {"10.0.0.256"}; }),
               ErrorCode::kInvalidArgument, "'10.0.0.256' is not an IPv4 or IPv6 address");
  expect_error(with([](SignRequest& r) { r.ip_addresses = {"node-1"}; }),
               ErrorCode::kInvalidArgument, "IP address");
  expect_error(with([](SignRequest& r) { r.public_key_pem = "not a key"; }),
               ErrorCode::kInvalidArgument, "not a PEM public key");

  // A key of another kind (P-384 here) is refused: we make our keys P-256.
  PKey p384(EVP_EC_gen("P-384"));
  ASSERT_TRUE(p384);
  std::string p384_pem = pubkey_pem_of(p384.get());
  expect_error(with([&](SignRequest& r) { r.public_key_pem = p384_pem; }),
               ErrorCode::kInvalidArgument, "not an EC P-256 key");
}

TEST(ClusterCa, CaKeyMustMatchItsCertificate) {
  ClusterCa a = new_ca();
  ClusterCa b = new_ca();
  expect_error(sign_certificate({a.cert_pem, b.key_pem}, node_request()),
               ErrorCode::kInvalidArgument, "does not match");
  expect_error(sign_certificate({"garbage", a.key_pem}, node_request()),
               ErrorCode::kInvalidArgument, "the CA certificate is not a PEM certificate");
  expect_error(sign_certificate({a.cert_pem, "garbage"}, node_request()),
               ErrorCode::kInvalidArgument, "the CA key");
}

TEST(ClusterCa, EncryptedKeysAreRefusedWithoutPrompting) {
  PKey key(EVP_EC_gen("P-256"));
  Bio bio(BIO_new(BIO_s_mem()));
  char pass[] = "hunter2";
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), EVP_aes_256_cbc(), pass,
                                          sizeof pass - 1, nullptr, nullptr),
            1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<size_t>(n));
  ASSERT_NE(pem.find("ENCRYPTED"), std::string::npos);
  expect_error(public_key_pem(pem), ErrorCode::kInvalidArgument, "not an unencrypted PEM");
}

TEST(ClusterCa, GarbageIsInvalidArgument) {
  ClusterCa ca = new_ca();
  expect_error(certificate_info("nope"), ErrorCode::kInvalidArgument, "not a PEM certificate");
  expect_error(ca_fingerprint(""), ErrorCode::kInvalidArgument, "not a PEM certificate");
  expect_error(verify_certificate("nope", ca.cert_pem, CertUsage::kServer),
               ErrorCode::kInvalidArgument, "the CA certificate");
  expect_error(verify_certificate(ca.cert_pem, "nope", CertUsage::kServer),
               ErrorCode::kInvalidArgument, "the certificate");
  expect_error(public_key_pem("nope"), ErrorCode::kInvalidArgument, "private key");
  // A public key is not a private key.
  expect_error(public_key_pem(*public_key_pem(*make_key())), ErrorCode::kInvalidArgument,
               "private key");
}

TEST(ClusterCa, FailuresLeaveNoOpensslErrorsBehind) {
  ERR_clear_error();
  ClusterCa ca = new_ca();
  (void)certificate_info("nope");
  (void)public_key_pem("nope");
  (void)sign_certificate({ca.cert_pem, "garbage"}, node_request());
  (void)verify_certificate(new_ca().cert_pem, sign_ok(ca, node_request()), CertUsage::kBoth);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// --- fingerprints ---

TEST(ClusterCa, FingerprintIsSha256OfTheDer) {
  ClusterCa ca = new_ca();
  auto fp = ca_fingerprint(ca.cert_pem);
  ASSERT_TRUE(fp) << fp.error().to_string();
  EXPECT_EQ(fp->size(), 64u);
  EXPECT_TRUE(is_lower_hex(*fp)) << *fp;
  EXPECT_EQ(*ca_fingerprint(ca.cert_pem), *fp) << "stable";
  EXPECT_EQ(certificate_info(ca.cert_pem)->sha256, *fp);
  // Surrounding whitespace in the PEM changes nothing: it is the DER that is hashed.
  EXPECT_EQ(*ca_fingerprint("\n" + ca.cert_pem + "\n\n"), *fp);

  // The same digest, computed by OpenSSL.
  X509Ptr cert = openssl_cert(ca.cert_pem);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASSERT_EQ(X509_digest(cert.get(), EVP_sha256(), md, &len), 1);
  std::string expected;
  for (unsigned int i = 0; i < len; ++i) {
    char two[3];
    snprintf(two, sizeof two, "%02x", md[i]);
    expected += two;
  }
  EXPECT_EQ(*fp, expected);

  EXPECT_NE(*ca_fingerprint(new_ca().cert_pem), *fp) << "another CA, another fingerprint";
}

// --- the join token ---

const std::string kFingerprint(64, 'a');
const std::string kSecret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(JoinToken, RoundTrips) {
  ClusterCa ca = new_ca();
  std::string fp = *ca_fingerprint(ca.cert_pem);
  auto token = format_join_token(fp, kSecret);
  ASSERT_TRUE(token) << token.error().to_string();
  EXPECT_EQ(*token, "mill-join-v1." + fp + "." + kSecret);
  auto parsed = parse_join_token(*token);
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  EXPECT_EQ(parsed->ca_fingerprint, fp);
  EXPECT_EQ(parsed->secret, kSecret);
}

TEST(JoinToken, ToleratesAFileNewlineAndUpperCaseHash) {
  std::string upper(64, 'A');
  auto parsed = parse_join_token("  mill-join-v1." + upper + "." + kSecret + "\n");
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  EXPECT_EQ(parsed->ca_fingerprint, kFingerprint);
  EXPECT_EQ(parsed->secret, kSecret);
  EXPECT_EQ(*format_join_token(upper, kSecret), "mill-join-v1." + kFingerprint + "." + kSecret);
}

TEST(JoinToken, MalformedTokensSayWhatIsWrong) {
  auto bad = [](const std::string& text, const std::string& fragment) {
    SCOPED_TRACE(text);
    expect_error(parse_join_token(text), ErrorCode::kInvalidArgument, fragment);
  };
  bad("", "the join token is empty");
  bad(" \n", "the join token is empty");
  bad("hello", "not a Mill join token");
  bad("K10abc::server:xyz", "not a Mill join token");
  bad("mill-join-v2." + kFingerprint + "." + kSecret, "unsupported join token version");
  bad("mill-join-" + kSecret, "unsupported join token version");
  bad("mill-join-v1.", "the CA hash must be 64 hex digits");
  bad("mill-join-v1." + kSecret, "the secret is empty");
  bad("mill-join-v1." + std::string(63, 'a') + "." + kSecret, "the CA hash must be 64 hex digits");
  bad("mill-join-v1." + std::string(65, 'a') + "." + kSecret, "the CA hash must be 64 hex digits");
  bad("mill-join-v1." + std::string(63, 'a') + "g." + kSecret, "the CA hash must be 64 hex digits");
  bad("mill-join-v1.." + kSecret, "the CA hash must be 64 hex digits");
  bad("mill-join-v1." + kFingerprint, "the secret is empty");
  bad("mill-join-v1." + kFingerprint + ".", "the secret is empty");
  bad("mill-join-v1." + kFingerprint + ".abc.def", "the secret may hold only");
  bad("mill-join-v1." + kFingerprint + ".abc def", "the secret may hold only");
  bad("MILL-JOIN-V1." + kFingerprint + "." + kSecret, "not a Mill join token");
}

TEST(JoinToken, ABareSecretSaysToRunMillJoinToken) {
  auto r = parse_join_token(kSecret + "\n");
  expect_error(r, ErrorCode::kInvalidArgument, "not a Mill join token");
  EXPECT_NE(r.error().message.find("bare join secret"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("`mill join-token` on the server"), std::string::npos)
      << r.error().message;
}

TEST(JoinToken, ErrorsNeverShowTheSecret) {
  for (const std::string& text :
       {kSecret, "mill-join-v2." + kFingerprint + "." + kSecret, "mill-join-" + kSecret,
        "mill-join-v1." + kSecret, "mill-join-v1.xyz." + kSecret,
        "mill-join-v1." + kFingerprint + "." + kSecret + "!"}) {
    auto r = parse_join_token(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().message.find(kSecret), std::string::npos) << r.error().message;
  }
}

TEST(JoinToken, FormatChecksItsInputs) {
  expect_error(format_join_token("abc", kSecret), ErrorCode::kInvalidArgument,
               "the CA hash must be 64 hex digits");
  expect_error(format_join_token(kFingerprint, ""), ErrorCode::kInvalidArgument,
               "the secret is empty");
  expect_error(format_join_token(kFingerprint, "a.b"), ErrorCode::kInvalidArgument,
               "the secret may hold only");
}

// The login token has the join token's shape and checks, its own prefix and words: a
// join token is not a login token (nor the other way round), and a bare API token says
// to run `mill login-token`.
TEST(LoginToken, RoundTripsAndIsNotAJoinToken) {
  auto token = format_login_token(kFingerprint, kSecret);
  ASSERT_TRUE(token) << token.error().to_string();
  EXPECT_EQ(*token, "mill-login-v1." + kFingerprint + "." + kSecret);
  auto parsed = parse_login_token(*token + "\n");
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  EXPECT_EQ(parsed->ca_fingerprint, kFingerprint);
  EXPECT_EQ(parsed->secret, kSecret);

  expect_error(parse_join_token(*token), ErrorCode::kInvalidArgument, "not a Mill join token");
  expect_error(parse_login_token(*format_join_token(kFingerprint, kSecret)),
               ErrorCode::kInvalidArgument, "not a Mill login token");
  auto bare = parse_login_token(kSecret);
  expect_error(bare, ErrorCode::kInvalidArgument, "bare API token");
  EXPECT_NE(bare.error().message.find("`mill login-token` on the server"), std::string::npos)
      << bare.error().message;
  EXPECT_EQ(bare.error().message.find(kSecret), std::string::npos) << "never shows the token";
  expect_error(parse_login_token("mill-login-v2." + kFingerprint + "." + kSecret),
               ErrorCode::kInvalidArgument, "unsupported login token version");
  expect_error(parse_login_token(""), ErrorCode::kInvalidArgument, "the login token is empty");
}

// --- the join's pin check ---

TEST(PinnedCa, FindsThePinnedCaAnywhereInTheChain) {
  ClusterCa ca = new_ca();
  std::string pin = *ca_fingerprint(ca.cert_pem);
  auto key = make_key();
  ASSERT_TRUE(key);
  auto leaf = sign_certificate(ca, {.common_name = "mill-server",
                                    .public_key_pem = *public_key_pem(*key),
                                    .ip_addresses = {"127.0.0.1"},
                                    .usage = CertUsage::kServer});
  ASSERT_TRUE(leaf) << leaf.error().to_string();
  auto found = find_pinned_ca({*leaf, ca.cert_pem}, pin);
  ASSERT_TRUE(found) << found.error().to_string();
  EXPECT_EQ(*found, ca.cert_pem);
  std::string upper = pin;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(find_pinned_ca({ca.cert_pem}, upper)) << "the pin's case does not matter";
}

TEST(PinnedCa, AnotherCaIsRefusedNamingBothFingerprints) {
  ClusterCa ours = new_ca();
  ClusterCa theirs = new_ca();
  std::string pin = *ca_fingerprint(ours.cert_pem);
  std::string presented = *ca_fingerprint(theirs.cert_pem);
  auto found = find_pinned_ca({theirs.cert_pem}, pin);
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(found.error().message,
            "the server's CA does not match the join token (expected sha256 " + pin +
                ", the server presented " + presented + ")");
}

TEST(PinnedCa, AnEmptyOrGarbageChainIsRefused) {
  std::string pin(64, 'a');
  auto none = find_pinned_ca({}, pin);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("no certificate"), std::string::npos);
  auto garbage = find_pinned_ca({"not a certificate"}, pin);
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message.find("(not a certificate)"), std::string::npos);
}

}  // namespace
}  // namespace mill::crypto
