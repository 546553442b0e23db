#pragma once

#include <string>
#include <string_view>

namespace mill {

// What went wrong, in terms a caller can act on. The API layer maps each code to one
// HTTP status (api/status_map); nothing else should switch on codes to pick statuses.
enum class ErrorCode {
  kInvalidArgument,   // the caller's input is wrong (bad JSON, bad name, bad config)
  kNotFound,          // the thing named does not exist
  kAlreadyExists,     // create of something that exists
  kConflict,          // compare-and-swap lost, or the state forbids the operation now
  kUnauthenticated,   // missing or wrong credentials
  kPermissionDenied,  // known caller, not allowed this (a removed node registering)
  kTooLarge,          // input over a configured limit
  kUnavailable,       // a peer or dependency cannot be reached now; retrying may help
  kTimeout,           // an operation ran out of time
  kCompacted,         // a watch asked for history that is no longer kept
  kIo,                // the local system failed (disk, file, socket)
  kInternal,          // a bug or a broken invariant
};

std::string_view error_code_name(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // "not_found: secret 'x' does not exist"
  std::string to_string() const;
};

}  // namespace mill
