// Store crash test: SIGKILL the server in a loop while several clients write secrets;
// every write acknowledged (HTTP 200) before a kill must be there, with its exact
// value, after the restart, and PRAGMA integrity_check must say "ok" at the end.
//
// A write that was in flight at the kill (sent, no answer) may or may not have been
// applied: after the restart a key must hold either its last acknowledged value or
// that in-flight one, nothing else (and never an older value).
//
// The kill delays come from a seeded generator; the seed is printed and can be set
// with MILL_CRASH_SEED to replay a run.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "store/sqlite_store.h"
#include "support/eventually.h"

namespace mill::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kRounds = 12;
constexpr int kWriters = 4;
constexpr int kKeysPerWriter = 40;  // writes cycle over these, so keys get overwritten
constexpr int kMinDelayMs = 100;
constexpr int kMaxDelayMs = 600;

// Per writer: what the server has acknowledged, and the one write (if any) that was
// in flight when the server died.
struct WriterState {
  std::map<std::string, std::string> acked;  // key -> last acknowledged value
  std::optional<std::pair<std::string, std::string>> in_flight;
  uint64_t seq = 0;  // writes attempted so far, over all rounds
  int acked_this_round = 0;
  std::string failure;  // an unexpected answer (non-200 status), reported by the test
};

std::string make_value(std::mt19937_64& rng, int writer, uint64_t seq) {
  // Distinct per write, of varying size so pages split and WAL frames differ.
  std::string value = "v" + std::to_string(writer) + "-" + std::to_string(seq) + "-";
  size_t pad = std::uniform_int_distribution<size_t>(0, 3000)(rng);
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (size_t i = 0; i < pad; ++i) value += kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return value;
}

Result<net::ClientResponse> put_secret(const std::string& address, const std::string& token,
                                       const std::string& key, const std::string& value) {
  net::ClientRequest req;
  req.method = "PUT";
  req.target = "/v1/secrets/" + key;
  req.headers.push_back({"Authorization", "Bearer " + token});
  req.content_type = "application/json";
  req.body = boost::json::serialize(boost::json::object{{"value", value}});
  req.timeout = 30s;  // a loaded machine may be slow; a dead server fails at once
  return net::http_request(address, req);
}

// Writes until stop is set or a request fails (the server died under it). Only a 200
// counts as acknowledged; a transport error leaves the write "in flight".
void run_writer(int id, uint64_t seed, const std::string& address, const std::string& token,
                const std::atomic<bool>& stop, std::atomic<int>& round_acks, WriterState& st) {
  std::mt19937_64 rng(seed);
  st.in_flight.reset();
  st.acked_this_round = 0;
  while (!stop.load()) {
    uint64_t seq = st.seq++;
    std::string key = "k" + std::to_string(id) + "-" + std::to_string(seq % kKeysPerWriter);
    std::string value = make_value(rng, id, seq);
    auto res = put_secret(address, token, key, value);
    if (!res) {
      st.in_flight.emplace(key, value);
      return;
    }
    if (res->status != 200) {
      st.failure = "PUT " + key + " answered " + std::to_string(res->status) + ": " + res->body;
      return;
    }
    st.acked[key] = value;
    ++st.acked_this_round;
    ++round_acks;
  }
}

// GET every key a writer has touched and check it against the model; then make the
// model match what is durable now (an in-flight write that landed becomes the
// acknowledged value; one that did not is gone for good).
void verify_writer(const std::string& address, const std::string& token, WriterState& st, int round,
                   int& landed) {
  std::map<std::string, std::string> keys = st.acked;
  if (st.in_flight && !keys.contains(st.in_flight->first)) keys[st.in_flight->first] = "";
  for (const auto& [key, _] : keys) {
    auto acked = st.acked.find(key);
    bool in_flight_here = st.in_flight && st.in_flight->first == key;
    auto res = api(address, "GET", "/v1/secrets/" + key, token);
    if (res.status == 404) {
      EXPECT_EQ(acked, st.acked.end())
          << "round " << round << ": acknowledged key " << key << " is missing after restart";
      continue;
    }
    ASSERT_EQ(res.status, 200) << "round " << round << ": GET " << key << ": " << res.body;
    boost::system::error_code ec;
    auto doc = boost::json::parse(res.body, ec);
    ASSERT_TRUE(!ec && doc.is_object()) << res.body;
    const auto* value = doc.as_object().if_contains("value");
    ASSERT_TRUE(value && value->is_string()) << res.body;
    std::string got(value->as_string());
    if (in_flight_here && got == st.in_flight->second) {
      st.acked[key] = got;  // the unacknowledged write landed: fine, and now durable
      ++landed;
      continue;
    }
    ASSERT_NE(acked, st.acked.end())
        << "round " << round << ": " << key << " holds a value that was never written";
    // Values start "v<writer>-<seq>-", so the prefixes say which writes these were.
    EXPECT_TRUE(got == acked->second)
        << "round " << round << ": " << key
        << " does not hold its last acknowledged value (nor the in-flight one): got "
        << got.substr(0, 16) << "... (" << got.size() << " bytes), acknowledged "
        << acked->second.substr(0, 16) << "... (" << acked->second.size() << " bytes)";
  }
  st.in_flight.reset();
}

std::string sqlite3_cli_integrity_check(const std::string& db_path) {
  std::string cmd = "sqlite3 '" + db_path + "' 'PRAGMA integrity_check' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "<popen failed>";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (status != 0) out += " <exit status " + std::to_string(status) + ">";
  return out;
}

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string candidate = p.substr(start, end - start) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// PRAGMA integrity_check says "ok" both through the sqlite3 CLI and through our store.
void expect_sound(const std::string& db_path, uint64_t seed) {
  EXPECT_EQ(sqlite3_cli_integrity_check(db_path), "ok") << "seed " << seed;
  auto store = store::SqliteStore::open(db_path);
  ASSERT_TRUE(store) << store.error().to_string();
  auto check = (*store)->integrity_check();
  ASSERT_TRUE(check) << check.error().to_string();
  EXPECT_EQ(*check, "ok") << "seed " << seed;
}

TEST(Crash, AcknowledgedWritesSurviveKillNine) {
  ASSERT_TRUE(on_path("sqlite3"))
      << "the sqlite3 CLI is required (Debian package sqlite3, see scripts/install-deps.sh)";

  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("MILL_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("crash test seed: %llu (replay with MILL_CRASH_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);

  TempDir dir;
  std::string token = init_data_dir(dir);
  ASSERT_FALSE(token.empty());
  const std::string db_path = dir.file("data") + "/state.db";

  std::vector<WriterState> writers(kWriters);
  int total_acked = 0;
  int total_in_flight = 0;
  int landed = 0;  // in-flight writes found applied after the restart
  for (int round = 0; round < kRounds; ++round) {
    auto server = MillServer::start(dir);
    ASSERT_TRUE(server) << "round " << round;
    // Everything acknowledged before the previous kill must be here.
    for (auto& w : writers) verify_writer(server->address(), token, w, round, landed);
    if (::testing::Test::HasFailure()) FAIL() << "seed " << seed << ", log:\n" << server->log();

    int delay_ms = std::uniform_int_distribution<int>(kMinDelayMs, kMaxDelayMs)(rng);
    std::atomic<bool> stop{false};
    std::atomic<int> round_acks{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kWriters; ++i) {
      threads.emplace_back(run_writer, i, rng(), server->address(), token, std::cref(stop),
                           std::ref(round_acks), std::ref(writers[i]));
    }
    // The kill lands among real writes: its delay counts from the first acknowledged
    // one, however slow the machine is to get there.
    bool writing = eventually([&] { return round_acks.load() > 0; }, 60s);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    int code = server->stop(SIGKILL);
    stop = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(code, 128 + SIGKILL);

    int acked = 0, in_flight = 0;
    for (auto& w : writers) {
      EXPECT_TRUE(w.failure.empty()) << "round " << round << ": " << w.failure;
      acked += w.acked_this_round;
      in_flight += w.in_flight ? 1 : 0;
    }
    std::printf(
        "round %2d: killed %3d ms after the first ack, %3d writes acknowledged, %d in "
        "flight\n",
        round, delay_ms, acked, in_flight);
    // The test is only worth something if the kill landed among real writes.
    EXPECT_TRUE(writing) << "round " << round << ": no write was acknowledged in 60 s";
    EXPECT_GT(acked, 0) << "round " << round << ": no write was acknowledged before the kill";
    total_acked += acked;
    total_in_flight += in_flight;
    if (::testing::Test::HasFailure()) FAIL() << "seed " << seed;
  }

  // The file as the last SIGKILL left it (WAL not checkpointed): the CLI recovers it
  // like any other reader would, and must find it sound.
  expect_sound(db_path, seed);

  // One last restart: the data survived the recoveries above too; then a clean stop,
  // and the file is still sound afterwards.
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  for (auto& w : writers) verify_writer(server->address(), token, w, kRounds, landed);
  std::printf("total: %d writes acknowledged, %d in flight at a kill, %d of those applied\n",
              total_acked, total_in_flight, landed);
  EXPECT_EQ(server->stop(SIGTERM), 0) << server->log();
  expect_sound(db_path, seed);
}

}  // namespace
}  // namespace mill::testing
