#pragma once

// The server's data directory: credentials made by `mill init` and the state file.
//
//   <dir>/            0700
//     api.token       0600  the API bearer token (256 bits, hex)
//     join.token      0600  the token agents join with (256 bits, hex)
//     secrets.key     0600  AES-256 key for secrets at rest (hex)
//     node.id         0600  this machine's node id once registered
//     state.db        the SQLite store (+ -wal, -shm)

#include <string>

#include "common/result.h"

namespace mill::server {

struct Credentials {
  std::string api_token;
  std::string join_token;
  std::string secrets_key;  // raw 32 bytes
};

struct DataDir {
  std::string dir;
  std::string api_token_path() const { return dir + "/api.token"; }
  std::string join_token_path() const { return dir + "/join.token"; }
  std::string secrets_key_path() const { return dir + "/secrets.key"; }
  std::string node_id_path() const { return dir + "/node.id"; }
  std::string state_path() const { return dir + "/state.db"; }
};

enum class InitMode { kFresh, kForce };

// kFresh refuses (kAlreadyExists) when the directory already holds an API token.
// kForce makes new API and join tokens but keeps the secrets key and the state, so
// nothing stored becomes unreadable.
Result<Credentials> init_data_dir(const DataDir& dir, InitMode mode);

// Reads the credentials; kNotFound with advice when `mill init` has not run.
Result<Credentials> load_data_dir(const DataDir& dir);

}  // namespace mill::server
