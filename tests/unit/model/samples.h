#pragma once

// Allocations and states the model tests share: a service and a task allocation, and a
// running and an ended state, with every field set between them.
// node_protocol_test.cc pins their JSON, so a change here changes the pinned text.

#include <chrono>

#include "model/allocation.h"

namespace mill::model::samples {

using std::chrono::milliseconds;

inline Route web_route() { return {"web.example.com", "/", RouteTls{"CERT", "KEY"}, true}; }

inline Allocation service_allocation() {
  Allocation a;
  a.id = "web-x7k2";
  a.kind = "service";
  a.group = "web";
  a.node = "node-1";
  a.ip = "10.99.1.2";
  a.spec.image = "registry.example.com/web:v2";
  a.spec.cpu = 0.5;
  a.spec.memory = 64 << 20;
  a.spec.port = 8080;
  a.spec.command = {"/web", "--port", "8080"};
  a.spec.env = {{"DB", "postgres://db"}, {"MODE", "prod"}};
  a.spec.health =
      HealthCheck{"/healthz", milliseconds(1000), milliseconds(500), milliseconds(30000), 2};
  a.spec.volumes = {{"data", 1 << 20, "/data", false}, {"conf", 1 << 20, "/etc/app", true}};
  a.spec.route = web_route();
  a.created_at = SystemTime(milliseconds(1'700'000'000'123));
  return a;
}

// A task that was asked to stop: no group, port, health or volumes; a timeout, no init,
// and a secret reference still in its env.
inline Allocation task_allocation() {
  Allocation b;
  b.id = "job-ab12";
  b.kind = "task";
  b.node = "node-1";
  b.ip = "10.99.1.3";
  b.spec.image = "busybox";
  b.spec.cpu = 1;
  b.spec.memory = 4 << 20;
  b.spec.init = false;
  b.spec.timeout = milliseconds(60000);
  b.spec.env = {{"SECRET", "${secret:db}"}};
  b.desired = DesiredState::kStop;
  return b;
}

inline constexpr SystemTime kStarted{milliseconds(1'700'000'000'000)};

inline AllocState running_state() {
  AllocState s;
  s.id = "web-x7k2";
  s.status = AllocStatus::kHealthy;
  s.pid = 4242;
  s.started_at = kStarted;
  s.pull_duration = milliseconds(1200);
  s.start_duration = milliseconds(300);
  s.cpu_seconds = 1.25;
  s.memory_bytes = 50 << 20;
  s.restarts = 1;
  s.volume_used = {{"data", 4096}};
  return s;
}

inline AllocState exited_state() {
  AllocState s;
  s.id = "job-ab12";
  s.status = AllocStatus::kExited;
  s.message = "exited with code 3";
  s.exit_code = 3;
  s.started_at = kStarted;
  s.finished_at = kStarted + milliseconds(60'000);
  return s;
}

}  // namespace mill::model::samples
