#pragma once

// Image references as Docker reads them (pure: no I/O).
//
//   busybox                      -> docker.io/library/busybox:latest
//   user/app:1.2                 -> docker.io/user/app:1.2
//   localhost:5000/app           -> localhost:5000/app:latest
//   ghcr.io/org/app@sha256:<hex> -> pulled by digest (the tag, if also given, is kept
//                                   for display only)
//
// The first path component names a registry when it contains '.' or ':', is
// "localhost", or has an upper-case letter; otherwise the registry is Docker Hub
// ("docker.io", reached at registry-1.docker.io) and a single-component repository
// gets the "library/" prefix. Repositories must be lowercase, as Docker requires.

#include <string>
#include <string_view>

#include "common/result.h"

namespace mill::image {

inline constexpr std::string_view kDockerHub = "docker.io";

struct Reference {
  std::string registry;    // "docker.io", "ghcr.io", "127.0.0.1:5000"
  std::string repository;  // "library/busybox"
  std::string tag;         // "latest" unless a digest alone was given
  std::string digest;      // "sha256:<64 hex>" or empty

  // Canonical form: "docker.io/library/busybox:latest", "host/repo@sha256:...",
  // or "host/repo:tag@sha256:..." when both were given.
  std::string str() const;
  // host[:port] to dial: registry-1.docker.io for docker.io, else the registry.
  std::string endpoint() const;
  // What a manifest request asks for: the digest when there is one, else the tag.
  const std::string& manifest_reference() const { return digest.empty() ? tag : digest; }

  bool operator==(const Reference&) const = default;
};

// kInvalidArgument naming what is wrong.
Result<Reference> parse_reference(std::string_view text);

// True for "sha256:" followed by exactly 64 lowercase hex digits (the only digest
// algorithm Mill accepts).
bool is_valid_digest(std::string_view digest);

// True for hosts Mill talks to over plain HTTP without being told: 127.0.0.0/8,
// "localhost" and [::1], with or without a port.
bool is_loopback_host(std::string_view host_port);

}  // namespace mill::image
