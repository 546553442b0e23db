#pragma once

// What a person sees of a deploy (or restart) while its SSE stream arrives (spec:
// Deploy). Pure: the shell (deploy_stream.cc) feeds each event with the seconds since
// the request began and prints the text it gets back; no clock, no terminal in here.
//
// Events are accepted both as the spec's `event: progress` with a "phase" field and
// as events named after the phase (`event: scheduled`); `done` and `failed` end it.

#include <boost/json/object.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "net/sse.h"

namespace mill::cli {

class DeployProgress {
 public:
  enum class Outcome { kRunning, kDone, kFailed };

  // title: what runs, e.g. "deploy mill.toml" or "restart office".
  explicit DeployProgress(std::string title) : title_(std::move(title)) {}

  // One event, `now` seconds after the request began. Returns the lines plain output
  // prints for it (none for events with nothing to show, or after the end).
  std::vector<std::string> feed(const net::SseEvent& event, double now);

  // The live view a terminal redraws in place: a header with the spinner (`frame`
  // picks its glyph) and elapsed time, then each service and each of its replicas.
  std::vector<std::string> live_lines(double now, unsigned frame) const;

  // What to print once the stream has ended, however it ended.
  std::vector<std::string> summary() const;

  // 0 done, 1 failed (or done with success false), 3 ended before done or failed.
  int exit_code() const;
  Outcome outcome() const { return outcome_; }
  const std::string& deploy_id() const { return deploy_id_; }

 private:
  struct Replica {
    std::string alloc;  // "" when the server did not name it
    std::string node;
    std::string state;  // scheduled, starting, healthy, stopped
    double since = 0;   // when it was scheduled
    double healthy_after = -1;
  };
  struct Service {
    std::string name;
    std::vector<Replica> replicas;
    std::vector<std::string> stopped;  // old allocations stopped (rolling update)
    int stopped_unnamed = 0;
    std::string pulling;  // latest pull report while nothing is placed yet
  };

  Service& service(const std::string& name);
  Replica& replica(Service& s, const std::string& alloc, std::initializer_list<const char*> from,
                   double now);
  std::vector<std::string> apply(const std::string& phase, const boost::json::object& data,
                                 double now);

  std::string title_;
  std::string deploy_id_;
  std::vector<Service> services_;
  std::string pulling_;  // a cluster-wide pull report, until something is placed
  Outcome outcome_ = Outcome::kRunning;
  double end_ = -1;
  double elapsed_ = -1;  // the server's figure from done
  std::string failed_service_;
  std::string reason_;
};

// One line for one event, without times ("office: alloc-a1b2 scheduled on node-2");
// also used for the events of a stored deploy record (mill deploy --status).
std::string describe_event(std::string_view name, const boost::json::object& data);

}  // namespace mill::cli
