#pragma once

// The server's data directory: credentials made by `mill init` and the state file.
//
//   <dir>/            0700
//     api.token       0600  the API bearer token (256 bits, hex)
//     join.token      0600  the token agents join with (256 bits, hex)
//     secrets.key     0600  AES-256 key for secrets at rest (hex)
//     ca.pem          0644  the cluster CA's certificate (the join token pins its hash)
//     ca.key          0600  its private key: node and server certificates are signed here
//     node.id         0600  this machine's node id once registered
//     state.db        the SQLite store (+ -wal, -shm)

#include <string>

#include "common/result.h"
#include "crypto/cluster_ca.h"

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
  std::string ca_cert_path() const { return dir + "/ca.pem"; }
  std::string ca_key_path() const { return dir + "/ca.key"; }
  std::string state_path() const { return dir + "/state.db"; }
  // Where `mill init --listen` said the API listens: `mill server` listens there
  // unless told otherwise, and the client config `mill init` wrote points there.
  std::string listen_path() const { return dir + "/listen"; }
};

enum class InitMode { kFresh, kForce };

// kFresh refuses (kAlreadyExists) when the directory already holds an API token.
// kForce makes new API and join tokens but keeps the secrets key and the state, so
// nothing stored becomes unreadable. Both make the cluster CA if there is none (kForce
// keeps an existing one: the nodes that joined trust it).
Result<Credentials> init_data_dir(const DataDir& dir, InitMode mode);

// The cluster CA of the data dir, made (and written: ca.pem, ca.key 0600) when the dir
// has none yet (one `mill init` made before the CA existed).
Result<crypto::ClusterCa> ensure_cluster_ca(const DataDir& dir);

// The join token agents join with: "mill-join-v1.<sha256 of the CA>.<join secret>"
// (crypto::format_join_token). Makes the CA if the dir has none.
Result<std::string> join_token(const DataDir& dir);
// What `mill login` takes: the API token pinned to the cluster CA (crypto/cluster_ca.h).
Result<std::string> login_token(const DataDir& dir);

// Reads the credentials; kNotFound with advice when `mill init` has not run.
Result<Credentials> load_data_dir(const DataDir& dir);

}  // namespace mill::server
