#pragma once

// Process helpers for the runtime: identity that survives pid reuse (pid + start
// time), pidfds for race-free signalling and waiting, running a short command.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace mill::runtime {

// Clock ticks since boot at which `pid` started (/proc/PID/stat field 22); 0 if there
// is no such process. A zombie still has one.
uint64_t process_start_time(int pid);
// PURE: field 22 of a /proc/PID/stat line (the comm may hold spaces and parens).
uint64_t parse_start_time(std::string_view stat);

// A pidfd for the process that is `pid` *and* started at `start`; -1 if that process
// is gone (or is a zombie). The caller closes it.
int open_process(int pid, uint64_t start);

// Sends `sig` through a pidfd. False if the process is gone.
bool send_signal(int pidfd, int sig);
// True once the process behind `pidfd` has exited; false if `timeout` passed first.
bool wait_exit(int pidfd, std::chrono::milliseconds timeout);

}  // namespace mill::runtime
