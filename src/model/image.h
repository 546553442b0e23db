#pragma once

// What Mill needs from an image's config blob (OCI image-spec "config" object, which
// Docker v2 images share): how to start the process. Shared by image/ (which parses
// it) and runtime/ (which merges it with a task or service spec into an OCI bundle).

#include <string>
#include <vector>

namespace mill::model {

struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "KEY=value", in the image's order
  std::string working_dir;
  std::string user;  // "uid", "uid:gid", "name" or "name:group", as Docker takes it
  std::vector<std::string> exposed_ports;  // "8080/tcp"
  std::string stop_signal;                 // "SIGQUIT"; empty: SIGTERM

  bool operator==(const ImageConfig&) const = default;
};

}  // namespace mill::model
