#pragma once

// Unpacking one image layer (a tar: plain, gzip or zstd; bzip2 and xz too) into its own
// directory, ready to be stacked with overlayfs (rootfs.h).
//
// Security contract: the blob is untrusted. An entry is rejected — the whole unpack
// fails with kInvalidArgument naming it, and dest_dir is emptied again — when
//   - its path is absolute ("/etc/x") or has a ".." component ("a/../../x"). Docker
//     strips a leading "/"; we refuse instead: no layer built by a real tool has one;
//   - it is a hardlink whose target is absolute, has "..", is not an earlier entry of
//     this layer, or is a directory;
//   - it would be written through a symlink ("a -> /etc" then "a/passwd"), or would
//     replace a directory of this layer with something else (the trick that turns a
//     directory into a symlink before its deferred permissions are applied).
// Symlinks themselves may point anywhere: they are resolved inside the container.
// The unpack runs on its own thread with a private working directory (unshare
// CLONE_FS + fchdir), so libarchive's relative-path safety checks
// (ARCHIVE_EXTRACT_SECURE_*) start at dest_dir and nothing else in the process moves.
//
// Kept: modes (setuid/setgid/sticky too), numeric uid/gid (never looked up by name),
// mtimes, xattrs, device nodes, fifos, hardlinks, sparse files. Not kept: file flags
// (chattr), so a layer directory can always be removed.
//
// OCI whiteouts become overlayfs ones, because each layer is an overlay lower dir:
//   "DIR/.wh.NAME"      -> character device 0:0 "DIR/NAME" (skipped when this same
//                          layer has NAME: a whiteout only hides lower layers)
//   "DIR/.wh..wh..opq"  -> xattr trusted.overlay.opaque="y" on DIR
// Other ".wh..wh.*" names (aufs bookkeeping) are ignored.
//
// Needs root (owners, device nodes, trusted.* xattrs). Thread-safe: unpacks of
// different layers may run concurrently.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace mill::image {

struct UnpackStats {
  uint64_t entries = 0;  // tar entries seen, whiteouts included
  uint64_t bytes = 0;    // file data written (uncompressed)
};

// kYes flushes the filesystem (one syncfs) before returning, so a caller that then
// records the layer as unpacked can trust it after a crash.
enum class Sync { kYes, kNo };

// Where a layer's bytes come from, in order: each call gives the next ones (valid
// until the next call), an empty view at the end. An error ends the unpack with it.
using LayerReader = std::function<Result<std::string_view>()>;

// dest_dir must exist and be empty. Errors: the reader's own, kInvalidArgument (not a
// tar, corrupt or truncated, a rejected entry, dest_dir not empty), kIo. On any error
// dest_dir is left empty. The unpack may stop reading before the reader's end (bytes
// after a tar's end-of-archive marker are never asked for).
Result<UnpackStats> unpack_layer(const LayerReader& read, const std::string& dest_dir,
                                 Sync sync = Sync::kYes);
// The same from a blob file; kNotFound when there is none.
Result<UnpackStats> unpack_layer(const std::string& blob_path, const std::string& dest_dir,
                                 Sync sync = Sync::kYes);

}  // namespace mill::image
