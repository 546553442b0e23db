// RuncRuntime with real runc containers (root; under CI a missing need fails).

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <map>
#include <mutex>

#include "container_fixture.h"

namespace mill::runtime::testing {
namespace {

using namespace std::chrono_literals;

TEST_F(ContainerTest, OutputGoesToTheLogByStreamAndTheExitCodeIsRecorded) {
  auto s = sh("echo out; echo err >&2; echo more; exit 3", false);
  auto st = start(s);
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_GT(st->pid, 0);
  EXPECT_GT(st->shim_pid, 0);
  auto exit = runtime_->wait(s.id, 10s);
  ASSERT_TRUE(exit) << exit.error().to_string();
  EXPECT_EQ(exit->code, 3);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_FALSE(exit->finished_at.empty());
  EXPECT_EQ(lines_of(st->log_dir, "stdout"), (std::vector<std::string>{"out", "more"}));
  EXPECT_EQ(lines_of(st->log_dir, "stderr"), std::vector<std::string>{"err"});
  auto after = runtime_->state(s.id);
  ASSERT_TRUE(after);
  EXPECT_FALSE(after->running);
  ASSERT_TRUE(after->exit);
  EXPECT_EQ(after->exit->code, 3);
  EXPECT_EQ(runtime_->signal(s.id, SIGTERM).error().code, ErrorCode::kConflict);
}

TEST_F(ContainerTest, InitIsPid1ByDefaultAndTheAppWithoutIt) {
  const std::string script = "tr '\\0' ' ' < /proc/1/cmdline; echo";
  auto with = sh(script);
  auto without = sh(script, false);
  ASSERT_TRUE(start(with));
  ASSERT_TRUE(start(without));
  EXPECT_EQ(runtime_->wait(with.id, 10s)->code, 0);
  EXPECT_EQ(runtime_->wait(without.id, 10s)->code, 0);
  auto a = lines_of(runtime_->state(with.id)->log_dir);
  auto b = lines_of(runtime_->state(without.id)->log_dir);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].rfind("/sbin/mill-init -- sh -c", 0), 0u) << a[0];
  EXPECT_EQ(b[0].rfind("sh -c", 0), 0u) << b[0];
}

TEST_F(ContainerTest, HostnameHostsEnvUserAndWorkdirFromImageAndSpec) {
  model::ImageConfig image;
  image.env = {"FOO=image", "KEEP=yes"};
  image.working_dir = "/bin";
  image.user = "1234:5678";
  auto s = sh("echo $(hostname) $FOO $KEEP $BAR $(pwd); id -u; id -g; cat /etc/hosts");
  s.env = {{"FOO", "spec"}, {"BAR", "x"}};
  ::mill::testing::TempDir files;
  fs::permissions(files.path(), fs::perms(0755));
  ASSERT_TRUE(write_file_atomic(files.file("hosts"), "10.99.0.2 web\n", 0644));
  s.hosts_path = files.file("hosts");
  fs::create_symlink("busybox", rootfs_.file("bin/id"));
  ASSERT_TRUE(start(s, image));
  EXPECT_EQ(runtime_->wait(s.id, 10s)->code, 0);
  EXPECT_EQ(
      lines_of(runtime_->state(s.id)->log_dir),
      (std::vector<std::string>{s.hostname + " spec yes x /bin", "1234", "5678", "10.99.0.2 web"}));
}

TEST_F(ContainerTest, DockerCapabilitiesSeccompNoNewPrivilegesAndMaskedPaths) {
  for (const char* applet : {"grep", "wc"}) {
    fs::create_symlink("busybox", rootfs_.file(std::string("bin/") + applet));
  }
  auto s =
      sh("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t' ' ';"
         "echo timer_list $(wc -c < /proc/timer_list);"
         "echo 1 > /proc/sys/kernel/domainname && echo sys-writable || echo sys-read-only",
         false);
  ASSERT_TRUE(start(s));
  ASSERT_TRUE(runtime_->wait(s.id, 10s));
  // /proc/timer_list is masked (it exists on every kernel, unlike /proc/kcore).
  // Docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
  // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
  EXPECT_EQ(
      lines_of(runtime_->state(s.id)->log_dir, "stdout"),
      (std::vector<std::string>{"CapEff: 00000000a80425fb", "CapBnd: 00000000a80425fb",
                                "NoNewPrivs: 1", "Seccomp: 2", "timer_list 0", "sys-read-only"}));
}

TEST_F(ContainerTest, SigtermReachesTheAppUnderInit) {
  auto s = sh("trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done");
  auto st = start(s);
  ASSERT_TRUE(st);
  ASSERT_TRUE(eventually([&] { return !lines_of(st->log_dir).empty(); }));
  auto exit = runtime_->stop(s.id, 10s);
  ASSERT_TRUE(exit) << exit.error().to_string();
  EXPECT_EQ(exit->code, 7);
  EXPECT_EQ(lines_of(st->log_dir), (std::vector<std::string>{"ready", "got-term"}));
}

TEST_F(ContainerTest, StopKillsAnAppIgnoringSigtermAfterTheGrace) {
  auto s = sh("trap '' TERM; echo ready; while :; do sleep 1; done");
  auto st = start(s);
  ASSERT_TRUE(st);
  ASSERT_TRUE(eventually([&] { return !lines_of(st->log_dir).empty(); }));
  auto begin = std::chrono::steady_clock::now();
  auto exit = runtime_->stop(s.id, 300ms);
  auto took = std::chrono::steady_clock::now() - begin;
  ASSERT_TRUE(exit) << exit.error().to_string();
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_EQ(exit->code, 128 + SIGKILL);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 5s);
  // Stopping what has ended returns the same exit.
  EXPECT_EQ(*runtime_->stop(s.id, 1s), *exit);
}

TEST_F(ContainerTest, OnExitReportsEveryExitOnceWithoutPolling) {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, ExitStatus> exits;
  int calls = 0;
  auto record = [&](const std::string& id, Result<ExitStatus> exit) {
    std::lock_guard lock(mu);
    ++calls;
    if (exit) exits[id] = *exit;
    cv.notify_all();
  };
  auto quick = sh("exit 4", false);
  auto slow = sh("echo up; sleep 0.3; exit 6", false);
  ASSERT_TRUE(start(quick));
  ASSERT_TRUE(start(slow));
  ASSERT_TRUE(runtime_->wait(quick.id, 10s));  // already ended when watched
  ASSERT_TRUE(runtime_->on_exit(quick.id, record));
  ASSERT_TRUE(runtime_->on_exit(slow.id, record));
  EXPECT_EQ(runtime_->on_exit("rt-unknown", record).error().code, ErrorCode::kNotFound);
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return exits.size() == 2; }));
  EXPECT_EQ(exits[quick.id].code, 4);
  EXPECT_EQ(exits[slow.id].code, 6);
  EXPECT_EQ(calls, 2);
}

TEST_F(ContainerTest, LimitsAreInTheCgroupAndUsageIsRead) {
  auto s = sh("i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo done; sleep 100");
  s.cpu = 0.5;
  s.memory_bytes = 64 << 20;
  s.pids_limit = 50;
  auto st = start(s);
  ASSERT_TRUE(st) << st.error().to_string();
  auto cg = [&](const char* controller, const char* v1, const char* v2) {
    auto v = read_file(cgroup_file(s.cgroup_path, controller, v1));
    if (!v) v = read_file(cgroup_file(s.cgroup_path, controller, v2));
    return v ? trim(*v) : std::string("<missing>");
  };
  EXPECT_EQ(cg("memory", "memory.limit_in_bytes", "memory.max"), std::to_string(64 << 20));
  EXPECT_EQ(cg("pids", "pids.max", "pids.max"), "50");
  std::string cpu = cg("cpu", "cpu.cfs_quota_us", "cpu.max");
  EXPECT_TRUE(cpu == "50000" || cpu == "50000 100000") << cpu;
  ASSERT_TRUE(eventually([&] { return !lines_of(st->log_dir).empty(); }, 30s));
  auto u = runtime_->usage(s.id);
  ASSERT_TRUE(u) << u.error().to_string();
  EXPECT_GT(u->cpu_seconds, 0.0);
  EXPECT_GT(u->memory_bytes, 0);
  ASSERT_TRUE(runtime_->stop(s.id, 5s));
}

TEST_F(ContainerTest, ShimSurvivesTheKillOfItsOwnerAndANewRuntimeReadopts) {
  // A child process plays the agent: it starts two containers and is killed -9.
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  auto ticker = sh("i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done");
  auto quitter = sh("sleep 0.5; echo bye; exit 5");
  started_.push_back(ticker.id);
  started_.push_back(quitter.id);
  pid_t agent = fork();
  if (agent == 0) {
    auto rt = make_runtime();
    auto a = rt->start(ticker, {});
    auto b = rt->start(quitter, {});
    std::string msg = a && b ? std::to_string(a->pid) + " " + std::to_string(a->shim_pid) : "x";
    (void)!write(report[1], msg.data(), msg.size());
    pause();
    _exit(0);
  }
  close(report[1]);
  char buf[64] = {};
  ssize_t got = read(report[0], buf, sizeof buf - 1);
  close(report[0]);
  kill(agent, SIGKILL);  // the agent's crash; before any assertion, so it never lingers
  waitpid(agent, nullptr, 0);
  ASSERT_GT(got, 0);
  int pid = 0, shim_pid = 0;
  ASSERT_EQ(sscanf(buf, "%d %d", &pid, &shim_pid), 2) << buf;

  auto restarted = make_runtime();
  auto all = restarted->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  auto t = restarted->state(ticker.id);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->running);
  EXPECT_EQ(t->pid, pid);
  EXPECT_EQ(t->shim_pid, shim_pid);
  EXPECT_EQ(kill(shim_pid, 0), 0);
  size_t seen = lines_of(t->log_dir).size();
  EXPECT_TRUE(eventually([&] { return lines_of(t->log_dir).size() > seen + 3; }))
      << "logs stopped flowing";
  auto q = restarted->wait(quitter.id, 10s);
  ASSERT_TRUE(q) << q.error().to_string();
  EXPECT_EQ(q->code, 5);
  EXPECT_EQ(lines_of(restarted->state(quitter.id)->log_dir), std::vector<std::string>{"bye"});

  std::string status = read_file("/proc/" + std::to_string(shim_pid) + "/status").value_or("");
  size_t at = status.find("VmRSS:");
  ASSERT_NE(at, std::string::npos);
  long rss_kb = std::stol(status.substr(at + 6));
  RecordProperty("shim_rss_kb", std::to_string(rss_kb));
  std::printf("mill-shim VmRSS: %ld kB\n", rss_kb);
  EXPECT_LT(rss_kb, 2048);
  runtime_ = std::move(restarted);
}

TEST_F(ContainerTest, SigtermToTheShimStopsTheContainerAndTheExitIsStillRecorded) {
  auto s = sh("trap 'echo bye; exit 9' TERM; echo up; while :; do sleep 0.05; done", false);
  auto st = start(s);
  ASSERT_TRUE(st);
  ASSERT_TRUE(eventually([&] { return !lines_of(st->log_dir).empty(); }));
  ASSERT_EQ(kill(st->shim_pid, SIGTERM), 0);
  ASSERT_EQ(kill(st->shim_pid, SIGPIPE), 0);  // ignored
  auto exit = runtime_->wait(s.id, 10s);
  ASSERT_TRUE(exit) << exit.error().to_string();
  EXPECT_EQ(exit->code, 9);
  EXPECT_EQ(lines_of(st->log_dir), (std::vector<std::string>{"up", "bye"}));
}

TEST_F(ContainerTest, LogsRotateAtSmallSizes) {
  RuntimeOptions o;
  o.log_max_bytes = 2000;
  o.log_max_files = 2;
  auto rt = make_runtime(o);
  auto s = sh("i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done", false);
  auto st = start_with(*rt, s);
  ASSERT_TRUE(st);
  EXPECT_EQ(rt->wait(s.id, 10s)->code, 0);
  std::string base = st->log_dir + "/current.jsonl";
  EXPECT_TRUE(fs::exists(base + ".1"));
  EXPECT_TRUE(fs::exists(base + ".2"));
  EXPECT_FALSE(fs::exists(base + ".3"));
  EXPECT_LE(fs::file_size(base + ".1"), 2000u);
  auto tail = tail_logs(st->log_dir, 2);
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->size(), 2u);
  EXPECT_EQ(tail->back().line, "line 199");
}

TEST_F(ContainerTest, StartFailureCarriesTheRuntimeMessageAndLeavesNothing) {
  auto s = spec({"/no/such/binary"}, false);
  auto st = start(s);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("/no/such/binary"), std::string::npos) << st.error().message;
  EXPECT_EQ(runtime_->state(s.id).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(runtime_->list()->empty());
}

TEST_F(ContainerTest, RemoveKeepsLogsWhenAsked) {
  auto s = sh("echo kept", false);
  ASSERT_TRUE(start(s));
  ASSERT_TRUE(runtime_->wait(s.id, 10s));
  std::string log_dir = runtime_->state(s.id)->log_dir;
  ASSERT_TRUE(runtime_->remove(s.id, KeepLogs::kYes));
  EXPECT_EQ(runtime_->state(s.id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(lines_of(log_dir), std::vector<std::string>{"kept"});
  ASSERT_TRUE(runtime_->remove(s.id, KeepLogs::kNo));
  EXPECT_FALSE(fs::exists(log_dir));
}

// crun (installed by scripts/install-deps.sh) runs the same bundle where the cgroup
// layout allows. crun 1.8 refuses "hybrid" hosts (a cgroup2 tree beside the v1
// hierarchies, as on this CI machine): there the start must fail with crun's own
// reason and leave nothing behind, which is what an operator choosing --runtime crun
// would see. Which of the two must happen is read from the host first.
TEST_F(ContainerTest, CrunRunsTheSameBundleOrSaysWhyItCannot) {
  MILL_REQUIRE(access("/usr/bin/crun", X_OK) == 0, "crun (scripts/install-deps.sh installs it)");
  const auto& mounts = cgroup_mounts();
  const bool hybrid =
      !cgroup_v2_only() &&
      std::any_of(mounts.begin(), mounts.end(), [](const auto& m) { return m.v2; }) &&
      std::any_of(mounts.begin(), mounts.end(), [](const auto& m) { return !m.v2; });
  RuntimeOptions o;
  o.runtime_path = "/usr/bin/crun";
  auto rt = make_runtime(o);
  ASSERT_TRUE(rt);
  auto s = sh("echo from-crun", false);
  auto st = start_with(*rt, s);
  if (hybrid) {
    ASSERT_FALSE(st) << "crun started a container on a hybrid cgroup host";
    EXPECT_NE(st.error().message.find("hybrid mode not supported"), std::string::npos)
        << st.error().to_string();
    auto left = rt->list();
    ASSERT_TRUE(left);
    EXPECT_TRUE(left->empty()) << "a failed start left a container behind";
    return;
  }
  ASSERT_TRUE(st) << st.error().to_string();
  auto exit = rt->wait(s.id, 10s);
  ASSERT_TRUE(exit) << exit.error().to_string();
  EXPECT_EQ(exit->code, 0);
  EXPECT_EQ(lines_of(st->log_dir), std::vector<std::string>{"from-crun"});
  ASSERT_TRUE(rt->remove(s.id, KeepLogs::kNo));
}

TEST_F(ContainerTest, TwoHundredStartStopCyclesLeaveNothingBehind) {
  using Clock = std::chrono::steady_clock;
  Clock::duration starting{}, stopping{}, removing{};
  auto begin = Clock::now();
  for (int i = 0; i < 200; ++i) {
    // The app says when it is up, as a health check would: a stop signal that reaches
    // the init before it has installed its handlers is lost (as under Docker).
    auto s = sh("echo up; exec sleep 100");
    auto t0 = Clock::now();
    auto st = runtime_->start(s, {});
    ASSERT_TRUE(st) << "cycle " << i << ": " << st.error().to_string();
    auto t1 = Clock::now();
    ASSERT_TRUE(eventually([&] { return !lines_of(st->log_dir).empty(); }));
    auto t2 = Clock::now();
    auto exit = runtime_->stop(s.id, 5s);
    ASSERT_TRUE(exit) << "cycle " << i << ": " << exit.error().to_string();
    EXPECT_EQ(exit->code, 128 + SIGTERM) << "cycle " << i;  // tini reports the app's signal
    auto t3 = Clock::now();
    auto removed = runtime_->remove(s.id, KeepLogs::kNo);
    ASSERT_TRUE(removed) << "cycle " << i << ": " << removed.error().to_string();
    starting += t1 - t0;
    stopping += t3 - t2;
    removing += Clock::now() - t3;
  }
  auto ms = [](Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count() / 200;
  };
  std::printf("200 cycles in %.1f s; per cycle: start %.1f ms, stop %.1f ms, remove %.1f ms\n",
              std::chrono::duration<double>(Clock::now() - begin).count(), ms(starting),
              ms(stopping), ms(removing));
  // TearDown checks that no runc state, shim, cgroup or state dir is left.
}

}  // namespace
}  // namespace mill::runtime::testing
