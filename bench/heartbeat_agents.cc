// mill_heartbeat_agents: N simulated agents for bench/heartbeat_cost.sh. Each registers
// (POST /v1/agent/register, a new node) and then heartbeats (POST /v1/agent/heartbeat)
// at the interval the server answered with (2 s by default), with the exact bodies of
// the node protocol's codec (model/node_protocol.h) and, like the real agent
// (agent/node_client.cc), one connection per call (net::http_request) and the join
// secret as the bearer token (over HTTPS with --ca-file and an https:// address; a real
// agent there presents its node certificate instead, which the server also verifies). Nothing else:
// no allocations or requests long polls, no status reports (a real agent with nothing to run also
// holds those two long polls open, re-asked every wait; they are not simulated here).
//
// The agents are spread evenly over the interval (agent i heartbeats at i/N of it), one
// thread sends them all in turn (each is one small request on loopback).
//
//   mill_heartbeat_agents --address 127.0.0.1:PORT --join-token-file DATA/join.token
//                         [--agents 50] [--duration 0 (until SIGTERM/SIGINT)]
//                         [--interval-ms 0 (the server's)]
//                         [--ca-file DATA/ca.pem, with an https:// address]
// Prints "registered N agents: node-A..node-B, heartbeat every X ms" once registered,
// and at the end one line starting with "RESULT " (heartbeats, errors, latency).

#include <sys/prctl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "model/node_protocol.h"
#include "net/http_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

struct Options {
  std::string address;
  std::string token_file;
  int agents = 50;
  int duration_s = 0;
  int interval_ms = 0;
  std::string ca_file;  // HTTPS (an https:// address): the cluster CA to trust
  std::string ca_pem;   // its contents: pinned in memory as the agent does (no system CAs)
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "%s\nusage: mill_heartbeat_agents --address HOST:PORT --join-token-file FILE "
               "[--agents N] [--duration S] [--interval-ms MS] [--ca-file CA.pem]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
    std::string value = argv[++i];
    if (arg == "--address") {
      o.address = value;
    } else if (arg == "--join-token-file") {
      o.token_file = value;
    } else if (arg == "--agents") {
      o.agents = std::atoi(value.c_str());
    } else if (arg == "--duration") {
      o.duration_s = std::atoi(value.c_str());
    } else if (arg == "--interval-ms") {
      o.interval_ms = std::atoi(value.c_str());
    } else if (arg == "--ca-file") {
      o.ca_file = value;
    } else {
      usage(("unknown option " + arg).c_str());
    }
  }
  if (o.address.empty() || o.token_file.empty())
    usage("--address and --join-token-file are required");
  if (o.agents < 1 || o.agents > 250) usage("--agents must be 1..250");
  return o;
}

// One call the way HttpNodeClient::call makes it; the status, or 0 with why.
int post(const Options& o, const std::string& token, const std::string& path,
         const std::string& body, std::string* answer) {
  auto req = mill::net::json_request("POST", path, body, std::chrono::seconds(10));
  req.headers.push_back({"Authorization", "Bearer " + token});
  req.ca_pem = o.ca_pem;
  auto res = mill::net::http_request(o.address, req);
  if (!res) {
    if (answer) *answer = res.error().message;
    return 0;
  }
  if (answer) *answer = res->body;
  return res->status;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  Options o = parse(argc, argv);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::string token;
  {
    std::ifstream in(o.token_file);
    std::getline(in, token);
  }
  if (token.empty()) usage("empty join token file");
  if (!o.ca_file.empty()) {
    std::ifstream in(o.ca_file);
    o.ca_pem.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (o.ca_pem.empty()) usage("empty CA file");
  }

  // What a 2-core, 4 GiB machine would say; the control plane only stores it.
  mill::model::Resources resources{2.0, 1.9, 4ll << 30, 3ll << 30};
  std::vector<std::string> ids;
  std::chrono::milliseconds interval{o.interval_ms};
  for (int i = 0; i < o.agents && !g_stop; ++i) {
    mill::model::RegisterRequest reg;
    reg.name = "sim-agent-" + std::to_string(i + 1);
    reg.address = "127.0.1." + std::to_string(i + 1);  // loopback: nothing is sent to it
    reg.resources = resources;
    std::string answer;
    int status = post(o, token, "/v1/agent/register", mill::model::encode(reg), &answer);
    if (status != 200) {
      std::fprintf(stderr, "register %s: %d %s\n", reg.name.c_str(), status, answer.c_str());
      return 1;
    }
    auto decoded = mill::model::decode_register_response(answer);
    if (!decoded) {
      std::fprintf(stderr, "register answer: %s\n", decoded.error().message.c_str());
      return 1;
    }
    ids.push_back(decoded->id);
    if (o.interval_ms == 0) interval = decoded->heartbeat_interval;
  }
  if (g_stop) return 1;
  std::printf("registered %d agents: %s..%s, heartbeat every %lld ms\n", o.agents,
              ids.front().c_str(), ids.back().c_str(), static_cast<long long>(interval.count()));
  std::fflush(stdout);

  const auto start = Clock::now();
  const auto end =
      o.duration_s > 0 ? start + std::chrono::seconds(o.duration_s) : Clock::time_point::max();
  std::vector<Clock::time_point> next(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    next[i] = start + interval * static_cast<int>(i) / o.agents;
  std::vector<std::string> bodies;
  for (const auto& id : ids)
    bodies.push_back(mill::model::encode(mill::model::Heartbeat{id, resources}));
  std::vector<double> latency_ms;
  long long sent = 0;
  long long errors = 0;
  long long late = 0;  // sent more than 100 ms after its time
  while (!g_stop) {
    size_t due = static_cast<size_t>(std::min_element(next.begin(), next.end()) - next.begin());
    auto when = next[due];
    if (when >= end) break;
    while (!g_stop && Clock::now() < when) {
      std::this_thread::sleep_for(std::min<Clock::duration>(when - Clock::now(), 100ms));
    }
    if (g_stop) break;
    auto t0 = Clock::now();
    if (t0 - when > 100ms) ++late;
    std::string answer;
    int status = post(o, token, "/v1/agent/heartbeat", bodies[due], &answer);
    auto t1 = Clock::now();
    ++sent;
    if (status != 200) {
      if (++errors <= 5)
        std::fprintf(stderr, "heartbeat %s: %d %s\n", ids[due].c_str(), status, answer.c_str());
    } else {
      latency_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    next[due] += interval;
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "RESULT agents=%d seconds=%.1f heartbeats=%lld rate=%.2f errors=%lld late=%lld "
      "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
      o.agents, secs, sent, secs > 0 ? static_cast<double>(sent) / secs : 0.0, errors, late,
      percentile(latency_ms, 0.5), percentile(latency_ms, 0.99),
      latency_ms.empty() ? 0.0 : *std::max_element(latency_ms.begin(), latency_ms.end()));
  return errors == 0 ? 0 : 1;
}
