#pragma once

// What is deployed for each service: the config its last successful rollout rolled it
// from. A deploy rolls services one at a time and stops at the first that fails, so
// after a failed deploy the services before it run their new spec and the rest their
// old one; the last config deployed in full (/config/deployed) cannot say that, this
// record can. It lives in the store at /config/rolled, written in the same transaction
// as the deploy record that moves past the service, so a server that restarts (or a
// deploy it resumes) finds the two agreeing.

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "model/config.h"

namespace mill::server {

struct DeployedServices {
  // A config as it was deployed: TOML with secret references (never values).
  struct Source {
    std::string file;
    std::string text;
    bool operator==(const Source&) const = default;
  };
  std::map<std::string, std::string> services;  // service -> key in `sources`
  std::map<std::string, Source> sources;        // by deploy id; only those `services` name

  // `service` now runs as in `source` (kept under `id`); drops sources nobody names.
  void set(const std::string& service, const std::string& id, const Source& source);
  void remove(const std::string& service);

  bool operator==(const DeployedServices&) const = default;
};

std::string encode(const DeployedServices& d);
// nullopt for a value that does not parse.
std::optional<DeployedServices> decode_deployed_services(std::string_view text);

// The config that describes what runs: each service of `deployed` as its source has
// it (with the sizes of the volumes it mounts there, and the registries its source
// names that `last_full` does not); task templates, registries and other volumes from
// `last_full`, the last config deployed in full. `parsed` holds each source parsed, by
// the same key; a service whose source is missing there is left out.
model::Config compose_deployed(const model::Config& last_full, const DeployedServices& deployed,
                               const std::map<std::string, model::Config>& parsed);

}  // namespace mill::server
