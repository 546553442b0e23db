// Certificates for tests, made in memory with OpenSSL: a CA, and server and client
// certificates it signs (P-256 keys, SHA-256 signatures, valid from an hour ago for a
// day). Header-only; a test that includes it links OpenSSL (mill_net does, publicly).

#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mill::testing {

struct TestCert {
  std::string cert_pem;
  std::string key_pem;
};

class TestCa {
 public:
  enum Usage { kServer, kClient, kServerAndClient };

  // A self-signed CA with this subject CN.
  explicit TestCa(const std::string& cn) : key_(new_key()), cert_(nullptr, X509_free) {
    cert_ = make(cn, key_.get(), nullptr,
                 {{NID_basic_constraints, "critical,CA:TRUE"},
                  {NID_key_usage, "critical,keyCertSign,cRLSign"}});
    pem_ = cert_pem(cert_.get());
  }

  const std::string& pem() const { return pem_; }

  // A leaf for this CN. sans: "IP:127.0.0.1", "DNS:node-1", ... (none when empty).
  TestCert issue(const std::string& cn, Usage usage, const std::vector<std::string>& sans = {}) {
    Key key = new_key();
    std::vector<std::pair<int, std::string>> ext = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_ext_key_usage, usage == kServer   ? "serverAuth"
                            : usage == kClient ? "clientAuth"
                                               : "serverAuth,clientAuth"}};
    std::string san;
    for (const auto& s : sans) san += (san.empty() ? "" : ",") + s;
    if (!san.empty()) ext.emplace_back(NID_subject_alt_name, san);
    Cert cert = make(cn, key.get(), this, ext);
    return {cert_pem(cert.get()), key_pem(key.get())};
  }

 private:
  using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
  using Cert = std::unique_ptr<X509, decltype(&X509_free)>;

  static void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test certificate: ") + what);
  }

  static Key new_key() {
    Key key(EVP_EC_gen("P-256"), EVP_PKEY_free);
    check(key != nullptr, "EC key generation");
    return key;
  }

  // Signed by `issuer`, or self-signed when it is null.
  static Cert make(const std::string& cn, EVP_PKEY* key, const TestCa* issuer,
                   const std::vector<std::pair<int, std::string>>& extensions) {
    static std::atomic<long> serial{1000};
    Cert cert(X509_new(), X509_free);
    X509* x = cert.get();
    check(x != nullptr, "X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509* issuer_cert = issuer ? issuer->cert_.get() : x;
    X509_set_issuer_name(x, X509_get_subject_name(issuer_cert));
    check(X509_set_pubkey(x, key) == 1, "X509_set_pubkey");
    for (const auto& [nid, value] : extensions) {
      X509V3_CTX ctx;
      X509V3_set_ctx_nodb(&ctx);
      X509V3_set_ctx(&ctx, issuer_cert, x, nullptr, nullptr, 0);
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
      check(ext != nullptr, "extension");
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
    check(X509_sign(x, issuer ? issuer->key_.get() : key, EVP_sha256()) > 0, "X509_sign");
    return cert;
  }

  template <class Write>
  static std::string to_pem(Write write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    check(bio && write(bio.get()) == 1, "PEM encoding");
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
  }
  static std::string cert_pem(X509* x) {
    return to_pem([x](BIO* b) { return PEM_write_bio_X509(b, x); });
  }
  static std::string key_pem(EVP_PKEY* k) {
    return to_pem([k](BIO* b) {
      return PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    });
  }

  Key key_;
  Cert cert_;
  std::string pem_;
};

}  // namespace mill::testing
