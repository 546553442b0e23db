#include "crypto/cluster_ca.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <ctime>
#include <memory>

#include "crypto/crypto.h"
#include "crypto/sha256.h"

namespace mill::crypto {
namespace {

using Clock = std::chrono::system_clock;

constexpr std::string_view kCaCommonName = "mill cluster CA";
// std::chrono::years is the mean Gregorian year, so this is ten calendar years give or
// take a few hours.
constexpr std::chrono::seconds kCaValidity = std::chrono::years(10);
// Certificates start a little in the past, so a peer whose clock lags ours accepts them.
constexpr std::chrono::seconds kBackdate = std::chrono::minutes(5);
// Far beyond any use, and well inside what a nanosecond time_point and ASN1_TIME hold.
constexpr std::chrono::seconds kMaxValidity = std::chrono::years(100);
constexpr int kSerialBits = 128;
constexpr size_t kMaxCommonName = 64;  // ub-common-name, RFC 5280
constexpr size_t kMaxDnsName = 253;

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using Bio = std::unique_ptr<BIO, Deleter<BIO_free>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using PKey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using X509Ext = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using Store = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using GeneralName = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;
using GeneralNames = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using Ia5String = std::unique_ptr<ASN1_IA5STRING, Deleter<ASN1_IA5STRING_free>>;
using OctetString = std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING_free>>;
void openssl_free(void* p) { OPENSSL_free(p); }
using OpensslBytes = std::unique_ptr<unsigned char, Deleter<openssl_free>>;

// Every public function holds one: whatever OpenSSL pushes onto this thread's error
// queue while it runs is dropped when it returns (errors it had before stay), so a
// later SSL_get_error on the same thread is not misled by our leftovers.
class ErrorQueueMark {
 public:
  ErrorQueueMark() { ERR_set_mark(); }
  ~ErrorQueueMark() { ERR_pop_to_mark(); }
  ErrorQueueMark(const ErrorQueueMark&) = delete;
  ErrorQueueMark& operator=(const ErrorQueueMark&) = delete;
};

// "what failed (OpenSSL's reason)", or just what failed when OpenSSL gave none.
std::string with_reason(std::string what) {
  unsigned long code = ERR_peek_last_error();
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    const char* reason = ERR_reason_error_string(code);
    what += " (";
    what += reason != nullptr ? reason : buf;
    what += ")";
  }
  return what;
}

Unexpected openssl_error(std::string what) {
  return make_error(ErrorCode::kInternal, with_reason("openssl: " + std::move(what) + " failed"));
}

Unexpected invalid(std::string message) {
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

// Never prompt on the terminal for a passphrase: our keys are not encrypted, and an
// encrypted one is refused.
int no_passphrase(char*, int, int, void*) { return -1; }

Bio read_bio(std::string_view pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

Result<X509Ptr> parse_cert(std::string_view pem, std::string_view what) {
  Bio bio = read_bio(pem);
  if (!bio) return openssl_error("BIO_new_mem_buf");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
  if (!cert) return invalid(with_reason(std::string(what) + " is not a PEM certificate"));
  return cert;
}

Result<PKey> parse_private_key(std::string_view pem, std::string_view what) {
  Bio bio = read_bio(pem);
  if (!bio) return openssl_error("BIO_new_mem_buf");
  PKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    return invalid(with_reason(std::string(what) + " is not an unencrypted PEM private key"));
  }
  return key;
}

Result<PKey> parse_public_key(std::string_view pem) {
  Bio bio = read_bio(pem);
  if (!bio) return openssl_error("BIO_new_mem_buf");
  PKey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) return invalid(with_reason("the public key is not a PEM public key"));
  return key;
}

bool is_p256(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC") != 1) return false;
  char name[64];
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, name, sizeof name, &len) != 1) return false;
  int nid = OBJ_txt2nid(name);
  if (nid == NID_undef) nid = EC_curve_nist2nid(name);
  return nid == NID_X9_62_prime256v1;
}

Result<std::string> bio_contents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n < 0 || (n > 0 && data == nullptr)) return openssl_error("BIO_get_mem_data");
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> cert_to_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return openssl_error("PEM_write_bio_X509");
  return bio_contents(bio.get());
}

Result<std::string> key_to_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return openssl_error("PEM_write_bio_PKCS8PrivateKey");
  }
  return bio_contents(bio.get());
}

Result<PKey> new_p256_key() {
  PKey key(EVP_EC_gen("P-256"));
  if (!key) return openssl_error("EC P-256 key generation");
  return key;
}

Result<void> set_random_serial(X509* cert) {
  Bignum bn(BN_new());
  if (!bn) return openssl_error("BN_new");
  do {
    if (BN_rand(bn.get(), kSerialBits, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) {
      return openssl_error("BN_rand");
    }
  } while (BN_is_zero(bn.get()));  // RFC 5280: the serial is positive
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return openssl_error("BN_to_ASN1_INTEGER");
  }
  return {};
}

Result<void> set_validity(X509* cert, Clock::time_point not_before, std::chrono::seconds validity) {
  Clock::time_point not_after = not_before + validity;
  if (ASN1_TIME_set(X509_getm_notBefore(cert), Clock::to_time_t(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), Clock::to_time_t(not_after)) == nullptr) {
    return openssl_error("ASN1_TIME_set");
  }
  return {};
}

Result<void> set_subject_cn(X509* cert, std::string_view common_name) {
  X509_NAME* name = X509_get_subject_name(cert);
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return openssl_error("setting the subject CN");
  }
  return {};
}

// Adds an extension given in openssl.cnf syntax ("critical,CA:TRUE"). Only fixed strings
// from this file come here; names from the caller go through add_subject_alt_names.
Result<void> add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509Ext ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return openssl_error(std::string("adding extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
  return {};
}

bool is_valid_dns_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxDnsName) return false;
  if (name.front() == '.' || name.back() == '.' || name.front() == '-') return false;
  if (name.find("..") != std::string_view::npos) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

Result<void> add_subject_alt_names(X509* cert, const SignRequest& request) {
  if (request.dns_names.empty() && request.ip_addresses.empty()) return {};
  GeneralNames names(sk_GENERAL_NAME_new_null());
  if (!names) return openssl_error("sk_GENERAL_NAME_new_null");
  auto push = [&](GeneralName name) -> Result<void> {
    if (sk_GENERAL_NAME_push(names.get(), name.get()) == 0) {
      return openssl_error("sk_GENERAL_NAME_push");
    }
    name.release();  // names owns it now
    return {};
  };
  for (const std::string& dns : request.dns_names) {
    if (!is_valid_dns_name(dns)) {
      return invalid("subjectAltName DNS name '" + dns +
                     "' is not a host name (letters, digits, '-' and '.')");
    }
    GeneralName name(GENERAL_NAME_new());
    Ia5String value(ASN1_IA5STRING_new());
    if (!name || !value ||
        ASN1_STRING_set(value.get(), dns.data(), static_cast<int>(dns.size())) != 1) {
      return openssl_error("making a DNS subjectAltName");
    }
    GENERAL_NAME_set0_value(name.get(), GEN_DNS, value.release());
    MILL_TRY(push(std::move(name)));
  }
  for (const std::string& ip : request.ip_addresses) {
    OctetString value(ip.find('\0') == std::string::npos ? a2i_IPADDRESS(ip.c_str()) : nullptr);
    if (!value) {
      return invalid("subjectAltName IP address '" + ip + "' is not an IPv4 or IPv6 address");
    }
    GeneralName name(GENERAL_NAME_new());
    if (!name) return openssl_error("GENERAL_NAME_new");
    GENERAL_NAME_set0_value(name.get(), GEN_IPADD, value.release());
    MILL_TRY(push(std::move(name)));
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return openssl_error("adding subjectAltName");
  }
  return {};
}

Result<void> sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return openssl_error("X509_sign");
  return {};
}

Clock::time_point to_time_point(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return Clock::from_time_t(timegm(&tm));
}

std::string asn1_string_text(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

std::string common_name_of(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  OpensslBytes owned(utf8);
  return std::string(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n));
}

Result<std::string> der_sha256(X509* cert) {
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  if (n <= 0) return openssl_error("i2d_X509");
  OpensslBytes owned(der);
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(n)));
}

bool is_hex(std::string_view s) {
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!ok) return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

Result<void> check_fingerprint(std::string_view fingerprint) {
  if (fingerprint.size() != 64 || !is_hex(fingerprint)) {
    return invalid("the CA hash must be 64 hex digits (the SHA-256 of the cluster CA)");
  }
  return {};
}

Result<void> check_secret(std::string_view secret) {
  if (secret.empty()) return invalid("the secret is empty");
  for (char c : secret) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return invalid("the secret may hold only letters, digits, '-' and '_'");
  }
  return {};
}

const char* usage_name(CertUsage usage) {
  switch (usage) {
    case CertUsage::kServer:
      return "serverAuth";
    case CertUsage::kClient:
      return "clientAuth";
    case CertUsage::kBoth:
      return "serverAuth,clientAuth";
  }
  return "serverAuth,clientAuth";
}

}  // namespace

Result<ClusterCa> make_cluster_ca() {
  ErrorQueueMark mark;
  PKey key = MILL_TRY(new_p256_key());
  X509Ptr cert(X509_new());
  if (!cert) return openssl_error("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return openssl_error("X509_set_version");
  MILL_TRY(set_random_serial(cert.get()));
  MILL_TRY(set_validity(cert.get(), Clock::now() - kBackdate, kCaValidity));
  MILL_TRY(set_subject_cn(cert.get(), kCaCommonName));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return openssl_error("X509_set_issuer_name");
  }
  if (X509_set_pubkey(cert.get(), key.get()) != 1) return openssl_error("X509_set_pubkey");
  // pathlen:0: the cluster CA signs leaves only, never another CA.
  MILL_TRY(
      add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  MILL_TRY(add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  MILL_TRY(add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  MILL_TRY(add_extension(cert.get(), cert.get(), NID_authority_key_identifier, "keyid:always"));
  MILL_TRY(sign(cert.get(), key.get()));
  return ClusterCa{MILL_TRY(cert_to_pem(cert.get())), MILL_TRY(key_to_pem(key.get()))};
}

Result<std::string> make_key() {
  ErrorQueueMark mark;
  PKey key = MILL_TRY(new_p256_key());
  return key_to_pem(key.get());
}

Result<std::string> public_key_pem(std::string_view key_pem) {
  ErrorQueueMark mark;
  PKey key = MILL_TRY(parse_private_key(key_pem, "the key"));
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) {
    return openssl_error("PEM_write_bio_PUBKEY");
  }
  return bio_contents(bio.get());
}

Result<std::string> sign_certificate(const ClusterCa& ca, const SignRequest& request) {
  ErrorQueueMark mark;
  const std::string& cn = request.common_name;
  if (cn.empty() || cn.size() > kMaxCommonName) {
    return invalid("the common name must be 1 to " + std::to_string(kMaxCommonName) + " bytes");
  }
  for (char c : cn) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return invalid("the common name has a control character");
    }
  }
  if (request.validity <= std::chrono::seconds::zero() || request.validity > kMaxValidity) {
    return invalid("the validity of certificate '" + cn + "' must be positive and at most " +
                   "100 years");
  }

  X509Ptr ca_cert = MILL_TRY(parse_cert(ca.cert_pem, "the CA certificate"));
  PKey ca_key = MILL_TRY(parse_private_key(ca.key_pem, "the CA key"));
  if (X509_check_ca(ca_cert.get()) == 0) return invalid("the CA certificate is not a CA");
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) {
    return invalid("the CA key does not match the CA certificate");
  }
  PKey subject_key = MILL_TRY(parse_public_key(request.public_key_pem));
  if (!is_p256(subject_key.get())) {
    return invalid("the public key for '" + cn + "' is not an EC P-256 key");
  }

  X509Ptr cert(X509_new());
  if (!cert) return openssl_error("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return openssl_error("X509_set_version");
  MILL_TRY(set_random_serial(cert.get()));
  Clock::time_point not_before =
      request.not_before != Clock::time_point{} ? request.not_before : Clock::now() - kBackdate;
  MILL_TRY(set_validity(cert.get(), not_before, request.validity));
  MILL_TRY(set_subject_cn(cert.get(), cn));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) != 1) {
    return openssl_error("X509_set_issuer_name");
  }
  if (X509_set_pubkey(cert.get(), subject_key.get()) != 1) return openssl_error("X509_set_pubkey");
  X509* issuer = ca_cert.get();
  MILL_TRY(add_extension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE"));
  MILL_TRY(add_extension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature"));
  MILL_TRY(add_extension(cert.get(), issuer, NID_ext_key_usage, usage_name(request.usage)));
  MILL_TRY(add_extension(cert.get(), issuer, NID_subject_key_identifier, "hash"));
  MILL_TRY(add_extension(cert.get(), issuer, NID_authority_key_identifier, "keyid:always"));
  MILL_TRY(add_subject_alt_names(cert.get(), request));
  MILL_TRY(sign(cert.get(), ca_key.get()));
  return cert_to_pem(cert.get());
}

Result<CertificateInfo> certificate_info(std::string_view cert_pem) {
  ErrorQueueMark mark;
  X509Ptr cert = MILL_TRY(parse_cert(cert_pem, "the certificate"));
  CertificateInfo info;
  info.common_name = common_name_of(cert.get());

  Bignum serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  if (!serial) return openssl_error("ASN1_INTEGER_to_BN");
  std::string serial_bytes(static_cast<size_t>(BN_num_bytes(serial.get())), '\0');
  BN_bn2bin(serial.get(), reinterpret_cast<unsigned char*>(serial_bytes.data()));
  info.serial_hex = serial_bytes.empty() ? "00" : to_hex(serial_bytes);

  info.not_before = to_time_point(X509_get0_notBefore(cert.get()));
  info.not_after = to_time_point(X509_get0_notAfter(cert.get()));
  info.sha256 = MILL_TRY(der_sha256(cert.get()));

  GeneralNames names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_DNS) {
      info.dns_names.push_back(asn1_string_text(name->d.dNSName));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      int length = ASN1_STRING_length(ip);
      char text[INET6_ADDRSTRLEN] = {};
      int family = length == 4 ? AF_INET : length == 16 ? AF_INET6 : 0;
      if (family != 0 && inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text)) {
        info.ip_addresses.push_back(text);
      }
    }
  }
  return info;
}

Result<std::string> ca_fingerprint(std::string_view cert_pem) {
  ErrorQueueMark mark;
  X509Ptr cert = MILL_TRY(parse_cert(cert_pem, "the CA certificate"));
  return der_sha256(cert.get());
}

Result<void> verify_certificate(std::string_view ca_cert_pem, std::string_view cert_pem,
                                CertUsage usage, Clock::time_point now) {
  ErrorQueueMark mark;
  X509Ptr ca = MILL_TRY(parse_cert(ca_cert_pem, "the CA certificate"));
  X509Ptr cert = MILL_TRY(parse_cert(cert_pem, "the certificate"));
  std::string name = "certificate '" + common_name_of(cert.get()) + "'";
  auto refused = [&](std::string why) {
    return make_error(ErrorCode::kUnauthenticated, name + " refused: " + why);
  };

  // Not a CA: the CA's own certificate chains to itself (were it fit for TLS), but it is no node.
  if (X509_check_ca(cert.get()) != 0) return refused("it is a CA certificate");

  Store store(X509_STORE_new());
  if (!store || X509_STORE_add_cert(store.get(), ca.get()) != 1) {
    return openssl_error("X509_STORE_add_cert");
  }
  StoreCtx ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return openssl_error("X509_STORE_CTX_init");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, Clock::to_time_t(now));
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  int purpose = usage == CertUsage::kClient ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER;
  if (X509_STORE_CTX_set_purpose(ctx.get(), purpose) != 1) {
    return openssl_error("X509_STORE_CTX_set_purpose");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    int error = X509_STORE_CTX_get_error(ctx.get());
    std::string why = X509_verify_cert_error_string(error);
    if (error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
        error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
        error == X509_V_ERR_CERT_SIGNATURE_FAILURE ||
        error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT) {
      why = "it was not issued by this CA (" + why + ")";
    }
    return refused(why);
  }

  // OpenSSL's purpose check lets a certificate without extendedKeyUsage pass; we want
  // the usage said explicitly.
  uint32_t wanted = 0;
  if (usage != CertUsage::kClient) wanted |= XKU_SSL_SERVER;
  if (usage != CertUsage::kServer) wanted |= XKU_SSL_CLIENT;
  bool has_eku = (X509_get_extension_flags(cert.get()) & EXFLAG_XKUSAGE) != 0;
  if (!has_eku || (X509_get_extended_key_usage(cert.get()) & wanted) != wanted) {
    return refused(std::string("its extendedKeyUsage lacks ") + usage_name(usage));
  }
  return {};
}

namespace {

// A token that pins the cluster CA and carries a secret: "<prefix><hash>.<secret>".
// The join token and the login token differ only in these words.
struct PinnedTokenKind {
  std::string_view prefix;   // "mill-join-v1."
  std::string_view family;   // "mill-join-": any version of it
  std::string_view name;     // "join token"
  std::string_view command;  // what prints one
  std::string_view secret;   // what it carries
};

constexpr PinnedTokenKind kJoin{kJoinTokenPrefix, "mill-join-", "join token", "mill join-token",
                                "join secret"};
constexpr PinnedTokenKind kLogin{kLoginTokenPrefix, "mill-login-", "login token",
                                 "mill login-token", "API token"};

Result<std::string> format_pinned(const PinnedTokenKind& kind, std::string_view ca_fingerprint,
                                  std::string_view secret) {
  MILL_TRY(check_fingerprint(ca_fingerprint));
  MILL_TRY(check_secret(secret));
  std::string token(kind.prefix);
  token += lower(ca_fingerprint);
  token += '.';
  token += secret;
  return token;
}

Result<PinnedToken> parse_pinned(const PinnedTokenKind& kind, std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos)
    return invalid("the " + std::string(kind.name) + " is empty");
  text = text.substr(first, text.find_last_not_of(kSpace) - first + 1);

  const std::string run =
      "; run `" + std::string(kind.command) + "` on the server and use the token it prints";
  if (!text.starts_with(kind.family)) {
    if (is_hex(text)) {
      return invalid("not a Mill " + std::string(kind.name) + ": this looks like a bare " +
                     std::string(kind.secret) +
                     ", which does not suffice (the token must also pin the cluster CA)" + run);
    }
    return invalid("not a Mill " + std::string(kind.name) + " (it starts with '" +
                   std::string(kind.prefix) + "')" + run);
  }
  if (!text.starts_with(kind.prefix)) {
    return invalid("unsupported " + std::string(kind.name) + " version (this Mill reads '" +
                   std::string(kind.prefix) + "' tokens)" + run);
  }
  std::string_view rest = text.substr(kind.prefix.size());
  size_t dot = rest.find('.');
  std::string_view fingerprint = rest.substr(0, dot);
  MILL_TRY(check_fingerprint(fingerprint));
  std::string_view secret = dot == std::string_view::npos ? "" : rest.substr(dot + 1);
  MILL_TRY(check_secret(secret));
  return PinnedToken{lower(fingerprint), std::string(secret)};
}

}  // namespace

Result<std::string> format_join_token(std::string_view ca_fingerprint, std::string_view secret) {
  return format_pinned(kJoin, ca_fingerprint, secret);
}

Result<JoinToken> parse_join_token(std::string_view text) { return parse_pinned(kJoin, text); }

Result<std::string> format_login_token(std::string_view ca_fingerprint,
                                       std::string_view api_token) {
  return format_pinned(kLogin, ca_fingerprint, api_token);
}

Result<LoginToken> parse_login_token(std::string_view text) { return parse_pinned(kLogin, text); }

Result<std::string> find_pinned_ca(const std::vector<std::string>& chain, std::string_view pin) {
  std::string presented;
  for (const auto& cert : chain) {
    auto fingerprint = ca_fingerprint(cert);
    std::string text = fingerprint ? *fingerprint : "(not a certificate)";
    if (fingerprint && pin.size() == fingerprint->size() &&
        std::equal(pin.begin(), pin.end(), fingerprint->begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == b;
        })) {
      return cert;
    }
    presented += (presented.empty() ? "" : ", ") + text;
  }
  if (presented.empty()) presented = "no certificate";
  return make_error(ErrorCode::kUnauthenticated,
                    "the server's CA does not match the join token (expected sha256 " +
                        std::string(pin) + ", the server presented " + presented + ")");
}

}  // namespace mill::crypto
