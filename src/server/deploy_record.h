#pragma once

// A deploy's record (spec: Deploy; docs/api.md GET /v1/deploys/:id): what a client
// reads after its stream is gone, and, while the deploy runs, how far it got, so a
// server that starts after a crash carries it on (DESIGN.md "Deploy").

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "server/rollout.h"

namespace mill::server {

struct DeployEvent {
  std::string event;  // "progress", then "done" or "failed"; empty: a keep-alive
  std::string data;   // a JSON object, as the spec shows it
};

// Where a running deploy is. Not part of the API: only a resuming server reads it.
struct DeployProgress {
  std::string text;     // a deploy: the config (secret references, never values)
  std::string file;     // its file name, for messages
  std::string restart;  // a restart: the service
  // "pulling", then "rolling" services[next], then "removing", then "recording".
  std::string stage = "pulling";
  std::vector<std::string> services;  // to roll, in order
  size_t next = 0;
  std::optional<Rollout::State> rollout;  // services[next], once begun
  std::string old_alloc;             // an allocation being replaced, encoded: the spec to restore
  std::vector<std::string> removed;  // services no longer in the config
};

struct DeployRecord {
  std::string id;      // "d-xxxxxx"
  std::string kind;    // "deploy" or "restart"
  std::string status;  // "running", "done" or "failed"
  SystemTime started_at{};
  std::optional<SystemTime> finished_at;
  std::string service;  // failed: the service that failed
  std::string reason;   // failed: why
  std::vector<DeployEvent> events;
  DeployProgress progress;  // while running
};

std::string encode_record(const DeployRecord& r);
// nullopt for a record that does not parse (or has no id).
std::optional<DeployRecord> decode_record(std::string_view text);

}  // namespace mill::server
