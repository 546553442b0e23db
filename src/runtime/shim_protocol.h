#pragma once

// What the runtime (agent side) and mill-shim agree on. Header-only, plain C++: the
// shim is a small static executable that links nothing of Mill.
//
//   mill-shim ID STATE_DIR RUNTIME RUNTIME_ROOT LOG_MAX_BYTES LOG_MAX_FILES
//
// with fd 3 the write end of the sync pipe, stdin /dev/null and stdout/stderr the
// shim's own diagnostics (STATE_DIR/shim.log). The shim runs the OCI runtime on the
// bundle STATE_DIR/bundle, then writes exactly one line to fd 3 and closes it:
//   "ok <container pid>\n"   the container's process runs (state.json is written), or
//   "error <message>\n"      the OCI runtime failed; the message is its stderr.

#include <string_view>

namespace mill::runtime::shim {

inline constexpr int kSyncFd = 3;
inline constexpr std::string_view kBundleDir = "bundle";
inline constexpr std::string_view kLogDir = "log";
inline constexpr std::string_view kLogFile = "current.jsonl";  // rotated: .1 (newest) .. .N
// {"pid":P,"pid_start":T,"shim_pid":S,"shim_start":T}, start times in clock ticks since
// boot (/proc/PID/stat field 22) so a reused pid is never mistaken for ours.
inline constexpr std::string_view kStateFile = "state.json";
// {"code":N,"finished_at":"..."} or {"signal":N,"finished_at":"..."}, written once,
// atomically, after the container's output is drained.
inline constexpr std::string_view kExitFile = "exit.json";
inline constexpr std::string_view kShimLog = "shim.log";
// Lines longer than this are split into several log records.
inline constexpr size_t kMaxLine = 16 * 1024;

}  // namespace mill::runtime::shim
