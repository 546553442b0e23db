#include "server/data_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/files.h"
#include "crypto/crypto.h"

namespace mill::server {
namespace {

Unexpected io_error(const std::string& what, const std::string& path) {
  return make_error(ErrorCode::kIo, what + " " + path + ": " + std::strerror(errno));
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<void> make_dir(const std::string& path) {
  // Create parents as needed (like mkdir -p), then force the leaf to 0700.
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      std::string part = path.substr(0, i);
      if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
        return io_error("cannot create directory", part);
      }
    }
  }
  if (::chmod(path.c_str(), 0700) != 0) return io_error("cannot chmod", path);
  return {};
}

Result<std::string> read_token(const std::string& path) {
  std::string t = trim(MILL_TRY(read_file(path)));
  if (t.size() < 64) return make_error(ErrorCode::kInvalidArgument, path + " is too short");
  return t;
}

}  // namespace

Result<Credentials> init_data_dir(const DataDir& dir, InitMode mode) {
  if (mode == InitMode::kFresh && exists(dir.api_token_path())) {
    return make_error(ErrorCode::kAlreadyExists,
                      dir.dir +
                          " is already initialised; use --force to make new tokens "
                          "(the secrets key and the state are kept)");
  }
  MILL_TRY(make_dir(dir.dir));
  Credentials c;
  c.api_token = MILL_TRY(crypto::random_hex(32));
  c.join_token = MILL_TRY(crypto::random_hex(32));
  MILL_TRY(write_file_atomic(dir.api_token_path(), c.api_token + "\n", 0600));
  MILL_TRY(write_file_atomic(dir.join_token_path(), c.join_token + "\n", 0600));
  if (exists(dir.secrets_key_path())) {
    auto loaded = MILL_TRY(load_data_dir(dir));
    c.secrets_key = loaded.secrets_key;
  } else {
    c.secrets_key = MILL_TRY(crypto::random_bytes(crypto::kKeyBytes));
    MILL_TRY(write_file_atomic(dir.secrets_key_path(), crypto::to_hex(c.secrets_key) + "\n", 0600));
  }
  MILL_TRY(ensure_cluster_ca(dir));
  return c;
}

Result<crypto::ClusterCa> ensure_cluster_ca(const DataDir& dir) {
  if (exists(dir.ca_cert_path()) && exists(dir.ca_key_path())) {
    crypto::ClusterCa ca;
    ca.cert_pem = MILL_TRY(read_file(dir.ca_cert_path()));
    ca.key_pem = MILL_TRY(read_file(dir.ca_key_path()));
    if (!crypto::ca_fingerprint(ca.cert_pem)) {
      return make_error(ErrorCode::kInvalidArgument,
                        dir.ca_cert_path() + " does not hold a PEM certificate");
    }
    return ca;
  }
  auto ca = MILL_TRY(crypto::make_cluster_ca());
  // The key first: a certificate without its key would be taken for a whole CA.
  MILL_TRY(write_file_atomic(dir.ca_key_path(), ca.key_pem, 0600));
  MILL_TRY(write_file_atomic(dir.ca_cert_path(), ca.cert_pem, 0644));
  return ca;
}

Result<std::string> join_token(const DataDir& dir) {
  auto creds = MILL_TRY(load_data_dir(dir));
  auto ca = MILL_TRY(ensure_cluster_ca(dir));
  return crypto::format_join_token(MILL_TRY(crypto::ca_fingerprint(ca.cert_pem)), creds.join_token);
}

Result<std::string> login_token(const DataDir& dir) {
  auto creds = MILL_TRY(load_data_dir(dir));
  auto ca = MILL_TRY(ensure_cluster_ca(dir));
  return crypto::format_login_token(MILL_TRY(crypto::ca_fingerprint(ca.cert_pem)), creds.api_token);
}

Result<Credentials> load_data_dir(const DataDir& dir) {
  if (!exists(dir.api_token_path())) {
    return make_error(ErrorCode::kNotFound,
                      dir.dir + " is not initialised: run `mill init --data-dir " + dir.dir + "`");
  }
  Credentials c;
  c.api_token = MILL_TRY(read_token(dir.api_token_path()));
  c.join_token = MILL_TRY(read_token(dir.join_token_path()));
  std::string key_hex = MILL_TRY(read_token(dir.secrets_key_path()));
  auto key = crypto::from_hex(key_hex);
  if (!key || key->size() != crypto::kKeyBytes) {
    return make_error(ErrorCode::kInvalidArgument,
                      dir.secrets_key_path() + " does not hold a 256-bit hex key");
  }
  c.secrets_key = std::move(*key);
  return c;
}

}  // namespace mill::server
