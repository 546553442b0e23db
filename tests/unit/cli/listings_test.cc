#include "cli/listings.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <sstream>

#include "cli/table.h"

namespace mill::cli {
namespace {

SystemTime at(const char* rfc3339) { return *parse_rfc3339(rfc3339); }

std::string render_services(const char* json, SystemTime now) {
  std::ostringstream out;
  print_services(boost::json::parse(json), now, out);
  return out.str();
}

TEST(Services, TableWithAllocationsAndHumanisedSizes) {
  const char* json = R"([{
    "name": "office", "image": "registry.example.com/office:v2",
    "replicas": {"desired": 2, "healthy": 1},
    "allocations": [
      {"id": "alloc-a1b2", "node": "node-2", "status": "healthy", "address": "10.99.0.2:49200",
       "cpu": 0.3, "memory": 348127232, "started_at": "2026-02-14T10:00:00Z"},
      {"id": "alloc-c3d4", "node": "node-1", "status": "starting", "address": "10.99.1.5:49201",
       "cpu": 0, "memory": 1536, "started_at": "2026-02-14T11:59:15Z"}
    ]}, {
    "name": "db", "image": "postgres:16", "replicas": {"desired": 1, "healthy": 0},
    "allocations": []}])";
  EXPECT_EQ(render_services(json, at("2026-02-14T12:00:00Z")),
            "NAME    IMAGE                           REPLICAS\n"
            "office  registry.example.com/office:v2  1/2\n"
            "  ID          NODE    STATUS    ADDRESS          CPU   MEMORY  AGE\n"
            "  alloc-a1b2  node-2  healthy   10.99.0.2:49200  0.30  332M    2h\n"
            "  alloc-c3d4  node-1  starting  10.99.1.5:49201  0.00  1.5K    45s\n"
            "\n"
            "NAME  IMAGE        REPLICAS\n"
            "db    postgres:16  0/1\n");
}

// Sizes as `ls -h` prints them (issue 15 item 15: "712K", not "712.0K" or "0B" for
// what was not measured): one decimal below 10 of a unit, whole ones from there.
TEST(Sizes, LikeLsH) {
  EXPECT_EQ(format_bytes(0), "0B");
  EXPECT_EQ(format_bytes(1000), "1000B");
  EXPECT_EQ(format_bytes(1536), "1.5K");
  EXPECT_EQ(format_bytes(712 * 1024), "712K");
  EXPECT_EQ(format_bytes(9.97 * 1024), "10K");
  EXPECT_EQ(format_bytes(64 << 20), "64M");
  EXPECT_EQ(format_bytes(1.5 * (1 << 30)), "1.5G");
  EXPECT_EQ(format_bytes(1024.0 * (1 << 30)), "1.0T");
}

// An allocation not measured yet (no memory or cpu from the server) shows "-", not 0.
TEST(Services, UnmeasuredUsageShowsAsADash) {
  const char* json = R"([{
    "name": "web", "image": "web:1", "replicas": {"desired": 1, "healthy": 0},
    "allocations": [{"id": "web-1", "node": "node-1", "status": "pulling",
                     "address": "10.99.1.2:8080"}]}])";
  EXPECT_EQ(render_services(json, at("2026-02-14T12:00:00Z")),
            "NAME  IMAGE  REPLICAS\n"
            "web   web:1  0/1\n"
            "  ID     NODE    STATUS   ADDRESS         CPU  MEMORY  AGE\n"
            "  web-1  node-1  pulling  10.99.1.2:8080  -    -       -\n");
}

TEST(Services, CrashLoopShowsRestartsAndMessage) {
  const char* json = R"([{
    "name": "api", "image": "api:1", "replicas": {"desired": 1, "healthy": 0},
    "allocations": [{"id": "a-1", "node": "node-1", "status": "crashloop", "restarts": 5,
       "message": "exited with code 1; next restart in 40s", "started_at": "2026-02-14T11:00:00Z"}]
  }])";
  EXPECT_EQ(render_services(json, at("2026-02-16T12:00:00Z")),
            "NAME  IMAGE  REPLICAS\n"
            "api   api:1  0/1\n"
            "  ID   NODE    STATUS     ADDRESS  CPU  MEMORY  AGE  RESTARTS\n"
            "  a-1  node-1  crashloop  -        -    -       2d   5\n"
            "    ↳ exited with code 1; next restart in 40s\n");
}

TEST(Services, NoneOrOddShapesDoNotFail) {
  EXPECT_EQ(render_services("[]", SystemTime()),
            "no services (run some with `mill deploy FILE`)\n");
  EXPECT_EQ(render_services(R"([{"name": 3, "replicas": "x", "allocations": {}}])", SystemTime()),
            "NAME  IMAGE  REPLICAS\n"
            "-     -      ?/?\n");
}

TEST(Volumes, Table) {
  std::ostringstream out;
  print_volumes(boost::json::parse(R"([
    {"name": "pgdata", "node": "node-1", "size": 10737418240, "used": 1610612736, "service": "db"},
    {"name": "cache", "node": "node-2", "size": "5G", "used": 0, "service": null}])"),
                out);
  EXPECT_EQ(out.str(),
            "NAME    NODE    SIZE  USED  SERVICE\n"
            "pgdata  node-1  10G   1.5G  db\n"
            "cache   node-2  5G    0B    -\n");
}

TEST(Volumes, InUseNamesTheService) {
  EXPECT_EQ(volume_in_use_text("pgdata", R"({"error": "volume in use", "service": "db"})"),
            "volume pgdata is in use by service db\n"
            "  remove db from the config (or its volume mount) and deploy, then try again.");
  EXPECT_EQ(volume_in_use_text("pgdata", R"({"error": "used by db"})").substr(0, 36),
            "volume pgdata is in use: used by db\n");
}

TEST(Deploys, ListAndRecord) {
  SystemTime now = at("2026-02-14T12:00:00Z");
  std::ostringstream list;
  print_deploys(boost::json::parse(R"([
    {"id": "d-2", "started_at": "2026-02-14T11:59:50Z", "status": "running"},
    {"id": "d-1", "started_at": "2026-02-14T10:00:00Z", "finished_at": "2026-02-14T10:00:04.200Z",
     "status": "failed", "reason": "web: health check timed out"}])"),
                now, list);
  EXPECT_EQ(list.str(),
            "ID   STARTED               DURATION  OUTCOME  REASON\n"
            "d-2  2026-02-14T11:59:50Z  10.0s     running\n"
            "d-1  2026-02-14T10:00:00Z  4.2s      failed   web: health check timed out\n");

  std::ostringstream record;
  print_deploy_record(boost::json::parse(R"({
    "id": "d-1", "started_at": "2026-02-14T10:00:00Z", "finished_at": "2026-02-14T10:00:04Z",
    "status": "failed", "reason": "web: health check timed out",
    "events": [
      {"event": "progress", "data": {"phase": "started", "deploy": "d-1"}},
      {"event": "scheduled", "data": "{\"service\":\"web\",\"node\":\"node-1\"}"},
      {"event": "failed", "data": {"service": "web", "reason": "health check timed out"}}]})"),
                      now, record);
  EXPECT_EQ(record.str(),
            "ID        d-1\n"
            "Outcome   failed\n"
            "Reason    web: health check timed out\n"
            "Started   2026-02-14T10:00:00Z\n"
            "Finished  2026-02-14T10:00:04Z\n"
            "Duration  4.0s\n"
            "\n"
            "Events:\n"
            "  deploy d-1 started\n"
            "  web: replica scheduled on node-1\n"
            "  FAILED web: health check timed out\n");
}

TEST(Time, Rfc3339AndAge) {
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:01:00Z"), SystemTime(std::chrono::seconds(60)));
  EXPECT_EQ(parse_rfc3339("1970-01-01T02:01:00+02:00"), SystemTime(std::chrono::seconds(60)));
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:01:00.5Z"), SystemTime(std::chrono::milliseconds(60500)));
  EXPECT_FALSE(parse_rfc3339("yesterday"));
  EXPECT_FALSE(parse_rfc3339("1970-01-01T00:01:00"));
  EXPECT_EQ(format_age(SystemTime(), SystemTime(std::chrono::seconds(59))), "59s");
  EXPECT_EQ(format_age(SystemTime(), SystemTime(std::chrono::seconds(3599))), "59m");
  EXPECT_EQ(format_age(SystemTime(std::chrono::seconds(9)), SystemTime()), "0s");
  EXPECT_EQ(format_seconds(4.25), "4.2s");
  EXPECT_EQ(format_seconds(185), "3m05s");
  EXPECT_EQ(format_seconds(3 * 86400 + 4 * 3600 + 5), "3d04h");
}

}  // namespace
}  // namespace mill::cli
