#pragma once

// What a spawn runs: the config's task templates ([task.NAME]) and registries, and
// the checks an inline spec must pass. Pure but for the config it keeps.
//
// Thread-safety: every method may be called from any thread; the mutex is a leaf.

#include <mutex>
#include <string>

#include "common/result.h"
#include "model/allocation.h"
#include "model/config.h"

namespace mill::server {

// What POST /v1/tasks/spawn asks for, decoded: a template name (with env added), or
// an inline spec.
struct SpawnRequest {
  std::string template_name;  // empty: inline
  model::AllocSpec spec;      // inline: the whole spec; template: only env is used
};

class SpawnTemplates {
 public:
  void set_config(model::Config config);
  model::Config config() const;

  // The spec to place and its group (the template's name, "" for inline): kNotFound
  // for an unknown template, kInvalidArgument for a spec that cannot run.
  Result<model::AllocSpec> resolve(const SpawnRequest& request, std::string& group) const;

 private:
  mutable std::mutex mutex_;
  model::Config config_;
};

}  // namespace mill::server
