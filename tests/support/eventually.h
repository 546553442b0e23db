// Bounded waiting for a condition in tests: the condition is the assertion, not the
// time it took.

#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace mill::testing {

// Polls `done` every 10 ms until it holds or `limit` has passed; returns its last value.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

}  // namespace mill::testing
