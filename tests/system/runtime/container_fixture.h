#pragma once

#include <cstdlib>

// Real containers for the runtime tests: a busybox rootfs in a temp dir, a RuncRuntime
// over temp state and runc roots, cgroups under /mill-test-<pid>. Needs root and runc;
// skips otherwise. TearDown removes every container the test started and checks that
// nothing (runc state, shims, cgroups, state dirs) is left.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "runtime/cgroups.h"
#include "runtime/log_reader.h"
#include "runtime/runc_runtime.h"
#include "support/crash_cleanup.h"
#include "support/eventually.h"
#include "support/require.h"
#include "support/temp_dir.h"

namespace mill::runtime::testing {

namespace fs = std::filesystem;

inline std::vector<std::string> lines_of(const std::string& log_dir,
                                         const std::string& stream = "") {
  std::vector<std::string> out;
  for (const auto& l : read_logs(log_dir).value_or(std::vector<LogLine>{})) {
    if (stream.empty() || l.stream == stream) out.push_back(l.line);
  }
  return out;
}

using mill::testing::eventually;

// Pids of processes whose command line mentions `needle` (e.g. a state root).
inline std::vector<int> processes_mentioning(const std::string& needle) {
  std::vector<int> out;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto cmdline = read_file(it->path().string() + "/cmdline");
    if (cmdline && cmdline->find(needle) != std::string::npos) out.push_back(std::stoi(name));
  }
  return out;
}

class ContainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MILL_REQUIRE(geteuid() == 0, "the container tests need root");
    MILL_REQUIRE(access("/usr/sbin/runc", X_OK) == 0, "the container tests need runc");
    // mkdtemp makes 0700; a container running as another user must get in.
    fs::permissions(rootfs_.path(), fs::perms(0755));
    fs::create_directories(rootfs_.file("bin"));
    fs::copy_file("/bin/busybox", rootfs_.file("bin/busybox"));
    for (const char* applet :
         {"sh", "echo", "cat", "sleep", "hostname", "tr", "true", "ls", "head", "seq"}) {
      fs::create_symlink("busybox", rootfs_.file(std::string("bin/") + applet));
    }
    runtime_ = make_runtime();
    ASSERT_TRUE(runtime_);
    // A crash skips TearDown: then runc itself removes what this test started, the
    // shims are killed (the pattern is split so that it never matches the cleanup
    // shell's own command line), and the test's cgroup parents go.
    const std::string root = runc_root_.path();
    const std::string state = state_.path();
    std::string cgroups;
    for (const auto& m : cgroup_mounts()) cgroups += " " + m.path + cgroup_parent();
    crash_cleanup_ = std::make_unique<::mill::testing::OnCrash>(std::vector<std::string>{
        "/bin/sh", "-c",
        "for c in $(/usr/sbin/runc --root " + root + " list -q 2>/dev/null); do " +
            "/usr/sbin/runc --root " + root + " delete -f $c; done 2>/dev/null; " +
            "a=" + state.substr(0, state.size() / 2) + "; b=" + state.substr(state.size() / 2) +
            "; pkill -KILL -f \"$a$b\" 2>/dev/null; for d in" + cgroups +
            "; do [ -d $d ] && find $d -depth -type d -exec rmdir {} \\; ; done 2>/dev/null; "
            "true"});
  }

  void TearDown() override {
    if (!runtime_) return;
    for (const auto& id : started_) {
      auto r = runtime_->remove(id, KeepLogs::kNo);
      EXPECT_TRUE(r) << r.error().to_string();
    }
    EXPECT_TRUE(fs::is_empty(state_.path())) << "state dirs left behind";
    EXPECT_TRUE(fs::is_empty(runc_root_.path())) << "runc state left behind";
    EXPECT_TRUE(processes_mentioning(state_.path()).empty()) << "shims left behind";
    for (const auto& m : cgroup_mounts()) {
      std::string parent = m.path + cgroup_parent();
      std::error_code ec;
      if (!fs::exists(parent, ec)) continue;
      for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_directory()) ADD_FAILURE() << "cgroup left behind: " << it->path();
      }
      rmdir(parent.c_str());
    }
  }

  std::unique_ptr<RuncRuntime> make_runtime(RuntimeOptions o = {}) {
    o.shim_path = MILL_SHIM_PATH;
    o.state_root = state_.path();
    o.runc_root = runc_root_.path();
    auto r = RuncRuntime::create(o);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? std::move(*r) : nullptr;
  }

  std::string cgroup_parent() const { return "/mill-test-" + std::to_string(getpid()); }

  ContainerSpec spec(std::vector<std::string> command, bool init = true) {
    ContainerSpec s;
    s.id = "rt-" + std::to_string(getpid()) + "-" + std::to_string(next_++);
    s.hostname = s.id;
    s.command = std::move(command);
    s.init = init;
    s.rootfs = rootfs_.path();
    s.cgroup_path = cgroup_parent() + "/" + s.id;
    return s;
  }

  ContainerSpec sh(const std::string& script, bool init = true) {
    return spec({"sh", "-c", script}, init);
  }

  Result<ContainerState> start(const ContainerSpec& s, const model::ImageConfig& image = {}) {
    return start_with(*runtime_, s, image);
  }
  Result<ContainerState> start_with(Runtime& rt, const ContainerSpec& s,
                                    const model::ImageConfig& image = {}) {
    started_.push_back(s.id);
    return rt.start(s, image);
  }

  ::mill::testing::TempDir rootfs_, state_, runc_root_;
  std::unique_ptr<::mill::testing::OnCrash> crash_cleanup_;
  std::unique_ptr<RuncRuntime> runtime_;
  std::vector<std::string> started_;
  int next_ = 0;
};

}  // namespace mill::runtime::testing
