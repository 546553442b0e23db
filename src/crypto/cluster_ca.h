#pragma once

// The cluster CA, node certificates and the join token (issue 14). Pure computation over
// PEM strings: no files, no network, no OpenSSL types in this header.
//
// How a node joins: `mill init` makes the CA (make_cluster_ca) and keeps its key on the
// server. `mill join-token` prints format_join_token(ca_fingerprint(ca.cert_pem), secret).
// The joining agent parses the token, connects over TLS and accepts the server only if
// its chain ends in a CA whose DER hashes to the pinned fingerprint; only then does it
// send the secret. It makes its own key (make_key) and sends public_key_pem(key) with
// the join request; the server answers with sign_certificate(ca, {node id, that public
// key, ...}). No CSR is needed: the secret authenticates the request, and the private
// key never leaves the node. The node protocol then runs over mTLS.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace mill::crypto {

// A certificate and its private key, both PEM (the key as PKCS#8, "BEGIN PRIVATE KEY").
struct ClusterCa {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed CA: EC P-256 key, CN "mill cluster CA", basicConstraints CA:TRUE with
// pathlen:0 (it signs leaves only; critical), keyUsage keyCertSign|cRLSign (critical), valid from 5
// minutes ago for 10 years, random 128-bit serial.
Result<ClusterCa> make_cluster_ca();

// A new EC P-256 private key as PKCS#8 PEM.
Result<std::string> make_key();

// The public key of a PEM private key, as SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY").
// kInvalidArgument if key_pem is not a private key.
Result<std::string> public_key_pem(std::string_view key_pem);

enum class CertUsage {
  kServer,  // extendedKeyUsage serverAuth
  kClient,  // extendedKeyUsage clientAuth
  kBoth,    // serverAuth and clientAuth (a node is the server of some connections and the
            // client of others)
};

struct SignRequest {
  std::string common_name;     // the node id, for node certificates; 1..64 bytes, no controls
  std::string public_key_pem;  // SubjectPublicKeyInfo PEM of an EC P-256 key
  std::vector<std::string> dns_names = {};     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses = {};  // subjectAltName IP entries ("10.0.0.5", "::1")
  CertUsage usage = CertUsage::kBoth;
  std::chrono::seconds validity = std::chrono::days(365);  // > 0, <= 100 years
  // Start of validity; by default 5 minutes before now, so a node whose clock is a
  // little behind the server's still accepts a certificate issued a moment ago.
  std::chrono::system_clock::time_point not_before{};
};

// A leaf certificate for the request's public key, signed by the CA: subject CN =
// common_name, subjectAltName from dns_names/ip_addresses (omitted when both are empty),
// extendedKeyUsage per usage, basicConstraints CA:FALSE and keyUsage digitalSignature
// (both critical), subject and authority key identifiers, random 128-bit serial.
// kInvalidArgument for a bad request (name, SAN, key, validity) or a CA whose key does
// not match its certificate.
Result<std::string> sign_certificate(const ClusterCa& ca, const SignRequest& request);

struct CertificateInfo {
  std::string common_name;  // "" when the subject has no CN
  std::string serial_hex;   // lower-case hex of the serial's big-endian bytes
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  std::string sha256;                  // lower-case hex SHA-256 of the DER encoding (64 characters)
  std::vector<std::string> dns_names;  // subjectAltName DNS entries, in order
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries, as text
};

// What a PEM certificate says about itself (the first certificate, when there are
// several). kInvalidArgument if it is not a PEM certificate.
Result<CertificateInfo> certificate_info(std::string_view cert_pem);

// Lower-case hex SHA-256 of the certificate's DER: what a join token pins. The same as
// certificate_info(cert_pem)->sha256.
Result<std::string> ca_fingerprint(std::string_view cert_pem);

// Checks that cert_pem chains to ca_cert_pem (the only trust anchor), is valid at now,
// is not itself a CA and carries the extendedKeyUsage that usage needs (kBoth: both).
// kUnauthenticated, naming the reason, when the certificate is refused;
// kInvalidArgument when either PEM does not parse. The TLS layer checks the same during
// the handshake; this is for tests and for checking what we issue.
Result<void> verify_certificate(
    std::string_view ca_cert_pem, std::string_view cert_pem, CertUsage usage,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// The join token, as k3s makes it: one string that pins the cluster CA and carries the
// join secret: "mill-join-v1.<64 hex SHA-256 of the CA's DER>.<secret>".
inline constexpr std::string_view kJoinTokenPrefix = "mill-join-v1.";

struct PinnedToken {
  std::string ca_fingerprint;  // 64 lower-case hex digits
  std::string secret;          // join token: the join secret; login token: the API token
};
using JoinToken = PinnedToken;

// kInvalidArgument if the fingerprint is not 64 hex digits or the secret is empty or has
// characters other than letters, digits, '-' and '_'.
Result<std::string> format_join_token(std::string_view ca_fingerprint, std::string_view secret);

// Parses a join token (surrounding whitespace, as a file's trailing newline, is ignored;
// the fingerprint comes back lower-case). kInvalidArgument with a message saying what is
// wrong; a bare secret (the pre-CA join token) is refused with a message that says to
// run `mill join-token` on the server. Messages never contain the secret.
Result<JoinToken> parse_join_token(std::string_view text);

// The login token: the same shape for a person's `mill` on another machine, carrying
// the API token: "mill-login-v1.<64 hex SHA-256 of the CA's DER>.<API token>". `mill
// login-token` on the server prints it; `mill login ADDR TOKEN` checks the server's
// chain against the pin before it sends the token, then writes the client config.
inline constexpr std::string_view kLoginTokenPrefix = "mill-login-v1.";
using LoginToken = PinnedToken;
Result<std::string> format_login_token(std::string_view ca_fingerprint, std::string_view api_token);
// As parse_join_token, with messages that name the login token and `mill login-token`.
Result<LoginToken> parse_login_token(std::string_view text);

// The join's pin check: the certificate of `chain` (PEM certificates, as
// net::fetch_peer_chain_pem returns them) whose ca_fingerprint is `pin`, as PEM. When
// none is, kUnauthenticated: "the server's CA does not match the join token (expected
// sha256 <pin>, the server presented <fingerprints of the chain, comma-separated>)".
Result<std::string> find_pinned_ca(const std::vector<std::string>& chain, std::string_view pin);

}  // namespace mill::crypto
