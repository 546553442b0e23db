#pragma once

// The OCI bundle's config.json from an image config and a container spec (PURE: no
// files, no clock). The merge follows Docker's rules:
// - entrypoint: the spec's if set, else the image's;
// - cmd: the spec's command if set; else the image's cmd, except that a spec
//   entrypoint without a command drops the image's cmd;
// - env: the image's, each key overridden in place by the spec, new spec keys appended
//   (sorted); PATH defaults as in Docker, HOSTNAME is set;
// - cwd: the spec's, else the image's, else "/";
// - user: spec.user, else the image's user when numeric ("uid" or "uid:gid"); a name
//   is an error here (resolve it first with resolve_user in user.h).
// With spec.init, the process is ["/sbin/mill-init", "--", ...] with spec.init_path
// bound read-only at /sbin/mill-init.

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "model/image.h"
#include "runtime/runtime.h"

namespace mill::runtime {

// kInvalidArgument: bad id, empty process, unresolved user name, relative rootfs.
Result<std::string> build_oci_config(const model::ImageConfig& image, const ContainerSpec& spec);

// The process args after the merge above, without the init (exposed for tests).
std::vector<std::string> merged_args(const model::ImageConfig& image, const ContainerSpec& spec);
// The env after the merge above, "KEY=value".
std::vector<std::string> merged_env(const model::ImageConfig& image, const ContainerSpec& spec);

// "SIGTERM", "TERM" or "15" -> 15. kInvalidArgument for anything else.
Result<int> parse_signal(std::string_view name);

// [a-z0-9-], 1..64 characters, not starting with '-'.
bool valid_container_id(std::string_view id);

// The annotation that carries the stop signal from start() to stop().
inline constexpr std::string_view kStopSignalAnnotation = "io.mill.stop-signal";

}  // namespace mill::runtime
