#pragma once

// The shell around DeployProgress shared by `mill deploy` and `mill restart`: sends
// the request, reads the SSE answer as it arrives and shows it, redrawn in place on a
// terminal (with a spinner that keeps turning between events) or as plain lines.

#include <ostream>
#include <string>
#include <string_view>

#include "cli/client.h"
#include "net/http_client.h"

namespace mill::cli {

enum class ProgressStyle { kLive, kPlain };

// kLive only when stdout is a terminal (and TERM is not "dumb") and not asked plain.
ProgressStyle choose_style(bool plain_flag);

// Runs `req` (its body_sink and timeout are set here) and returns the exit code:
// 0 done, 1 failed or refused, 2 refused as invalid (400), 3 stream ended early.
int run_deploy_stream(const ClientConfig& config, net::ClientRequest req, std::string title,
                      ProgressStyle style);

// A refused deploy or restart (non-2xx): prints to `err` and returns the exit code.
// 400: every entry of the body's "errors" ("file:line:col: message"), then the
// "error" text; 2. 409: "a deploy is already running: ID"; 1. Others: the error; 1.
int report_rejection(int status, std::string_view body, std::ostream& err);

}  // namespace mill::cli
