#include "model/node_protocol.h"

#include <gtest/gtest.h>

#include <string>

#include "samples.h"

namespace mill::model {
namespace {

using std::chrono::milliseconds;

Resources resources() { return {4, 2.5, 8LL << 30, 3LL << 30}; }

DesiredAllocations desired() {
  DesiredAllocations d;
  d.index = 42;
  d.allocations = {{samples::service_allocation(), AllocStatus::kRunning},
                   {samples::task_allocation(), AllocStatus::kExited}};
  d.registries = {{"localhost:5000", {"", "", true}},
                  {"registry.example.com", {"bot", "s3cret", false}}};
  d.remove_volumes = {"old-data"};
  d.routes = {{"web", samples::web_route(), {"10.99.1.2:8080"}}};
  d.pulls = ImagePulls{"d-7", {"registry.example.com/web:v2"}};
  return d;
}

StatusReport status_report() {
  return {"node-1", {samples::running_state(), samples::exited_state()}};
}

RegisterRequest register_request() {
  return {"node-1", "host-a", "192.0.2.10", resources(), "0.1.0"};
}
RegisterResponse register_response() {
  return {"node-1", milliseconds(5000), "10.99.1.0/24", "10.99.0.0/16"};
}
PullsReport pulls_report() {
  return {"node-1", "d-7", {{"busybox", ""}, {"nope:v9", "manifest unknown"}}};
}
VolumesReport volumes_report() { return {"node-1", {{"old-data", ""}, {"busy", "in use"}}}; }

template <class Message, class Decode>
void expect_round_trip(const Message& m, Decode decode) {
  auto back = decode(encode(m));
  ASSERT_TRUE(back.has_value()) << back.error().message << "\n" << encode(m);
  EXPECT_EQ(*back, m) << encode(m);
}

TEST(NodeProtocol, EveryMessageRoundTrips) {
  expect_round_trip(register_request(), decode_register_request);
  expect_round_trip(RegisterRequest{"", "host-b", "192.0.2.11", {}}, decode_register_request);
  expect_round_trip(register_response(), decode_register_response);
  expect_round_trip(Heartbeat{"node-1", resources()}, decode_heartbeat);
  expect_round_trip(desired(), decode_desired_allocations);
  expect_round_trip(DesiredAllocations{}, decode_desired_allocations);
  expect_round_trip(status_report(), decode_status_report);
  expect_round_trip(StatusReport{"node-2", {}}, decode_status_report);
  expect_round_trip(pulls_report(), decode_pulls_report);
  expect_round_trip(volumes_report(), decode_volumes_report);
}

TEST(NodeProtocol, AllocationsQueryRoundTripsThroughItsParameters) {
  AllocationsQuery q{"node-1", 42, milliseconds(30000)};
  EXPECT_EQ(encode(q), "node=node-1&index=42&wait_ms=30000");
  auto back = decode_allocations_query("node-1", "42", "30000");
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, q);
  auto defaults = decode_allocations_query("node-1", "", "");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(*defaults, (AllocationsQuery{"node-1", 0, milliseconds(0)}));
}

// The wire format as it was before the codec (written by api/agent_routes.cc and
// agent/node_client.cc at bd9b043): a change here is a protocol change.
TEST(NodeProtocol, DesiredAllocationsKeepTheirExactJson) {
  EXPECT_EQ(
      encode(desired()),
      R"({"index":42,"allocations":[{"alloc":{"id":"web-x7k2","kind":"service","group":"web",)"
      R"("node":"node-1","ip":"10.99.1.2","spec":{"image":"registry.example.com/web:v2",)"
      R"("cpu":0.5,"memory":67108864,"init":true,"port":8080,"command":["/web","--port","8080"],)"
      R"("env":{"DB":"postgres://db","MODE":"prod"},"health":{"path":"/healthz",)"
      R"("interval_ms":1000,"timeout_ms":500,"deadline_ms":30000,"passes":2},)"
      R"("volumes":[{"name":"data","size":1048576,"path":"/data","read_only":false},)"
      R"({"name":"conf","size":1048576,"path":"/etc/app","read_only":true}],)"
      R"("route":{"host":"web.example.com","path":"/","https_redirect":true,)"
      R"("tls":{"cert":"CERT","key":"KEY"}}},"desired":"run","created_at_ms":1700000000123},)"
      R"("status":"running"},{"alloc":{"id":"job-ab12","kind":"task","group":"","node":"node-1",)"
      R"("ip":"10.99.1.3","spec":{"image":"busybox","cpu":1,"memory":4194304,"init":false,)"
      R"("timeout_ms":60000,"command":[],"env":{"SECRET":"${secret:db}"}},"desired":"stop",)"
      R"("created_at_ms":0},"status":"exited"}],"registries":{"localhost:5000":{"username":"",)"
      R"("password":"","insecure":true},"registry.example.com":{"username":"bot",)"
      R"("password":"s3cret","insecure":false}},"remove_volumes":["old-data"],)"
      R"("routes":[{"service":"web","route":{"host":"web.example.com","path":"/",)"
      R"("https_redirect":true,"tls":{"cert":"CERT","key":"KEY"}},"upstreams":["10.99.1.2:8080"]}],)"
      R"("pulls":{"deploy":"d-7","images":["registry.example.com/web:v2"]}})");
  // Without volumes to remove or a pull, those fields are left out.
  EXPECT_EQ(encode(DesiredAllocations{}),
            R"({"index":0,"allocations":[],"registries":{},"routes":[]})");
}

TEST(NodeProtocol, StatusReportKeepsItsExactJson) {
  EXPECT_EQ(
      encode(status_report()),
      R"({"node":"node-1","allocations":[{"id":"web-x7k2","status":"healthy","message":"",)"
      R"("pid":4242,"pull_ms":1200,"start_ms":300,"cpu_seconds":1.25,"memory_bytes":52428800,)"
      R"("restarts":1,"volume_used":{"data":4096},"started_at_ms":1700000000000},)"
      R"({"id":"job-ab12","status":"exited","message":"exited with code 3","pid":0,"pull_ms":0,)"
      R"("start_ms":0,"cpu_seconds":0,"memory_bytes":0,"exit_code":3,)"
      R"("started_at_ms":1700000000000,"finished_at_ms":1700000060000}]})");
}

TEST(NodeProtocol, SmallMessagesKeepTheirExactJson) {
  EXPECT_EQ(encode(register_request()),
            R"({"name":"host-a","address":"192.0.2.10","resources":{"cpu":{"total":4,)"
            R"("available":2.5},"memory":{"total":8589934592,"available":3221225472}},)"
            R"("id":"node-1","version":"0.1.0"})");
  // An agent from before `version` was sent still registers; its version is unknown.
  auto older = decode_register_request(
      R"({"name":"host-a","address":"192.0.2.10","resources":{"cpu":{"total":4,)"
      R"("available":2.5},"memory":{"total":1,"available":1}},"id":"node-1"})");
  ASSERT_TRUE(older.has_value()) << older.error().message;
  EXPECT_EQ(older->version, "");
  EXPECT_EQ(encode(register_response()),
            R"({"id":"node-1","heartbeat_interval_ms":5000,"subnet":"10.99.1.0/24",)"
            R"("cluster_network":"10.99.0.0/16"})");
  EXPECT_EQ(encode(Heartbeat{"node-1", resources()}),
            R"({"id":"node-1","resources":{"cpu":{"total":4,"available":2.5},)"
            R"("memory":{"total":8589934592,"available":3221225472}}})");
  EXPECT_EQ(encode(pulls_report()),
            R"({"node":"node-1","deploy":"d-7","images":[{"image":"busybox"},)"
            R"({"image":"nope:v9","error":"manifest unknown"}]})");
  EXPECT_EQ(
      encode(volumes_report()),
      R"({"node":"node-1","volumes":[{"name":"old-data"},{"name":"busy","error":"in use"}]})");
}

// The error message of decoding `text`, or "decoded" when it decodes.
template <class Decode>
std::string error_of(Decode decode, std::string_view text) {
  auto r = decode(text);
  if (r) return "decoded";
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  return r.error().message;
}

struct BadInput {
  std::string_view text;
  std::string_view message;  // a part of the expected message
};

template <class Decode>
void expect_errors(Decode decode, std::initializer_list<BadInput> cases) {
  for (const auto& c : cases) {
    std::string message = error_of(decode, c.text);
    EXPECT_NE(message.find(c.message), std::string::npos)
        << "input: " << c.text << "\nmessage: " << message << "\nexpected: " << c.message;
  }
}

constexpr std::string_view kRes =
    R"({"cpu":{"total":4,"available":2},"memory":{"total":1024,"available":512}})";

std::string with_resources(std::string_view before, std::string_view res = kRes) {
  return std::string(before) + std::string(res) + "}";
}

TEST(NodeProtocol, BadRegisterRequestsAreErrors) {
  std::string ok = with_resources(R"({"name":"a","address":"b","resources":)");
  ASSERT_EQ(error_of(decode_register_request, ok), "decoded");
  std::string no_name = with_resources(R"({"address":"b","resources":)");
  std::string int_name = with_resources(R"({"name":5,"address":"b","resources":)");
  std::string extra = with_resources(R"({"name":"a","address":"b","extra":1,"resources":)");
  std::string inf_cpu =
      with_resources(R"({"name":"a","address":"b","resources":)",
                     R"({"cpu":{"total":1e400,"available":2},"memory":{"total":1,"available":1}})");
  std::string huge_mem = with_resources(
      R"({"name":"a","address":"b","resources":)",
      R"({"cpu":{"total":1,"available":1},"memory":{"total":99999999999999999999,"available":1}})");
  std::string gpu = with_resources(
      R"({"name":"a","address":"b","resources":)",
      R"({"cpu":{"total":1,"available":1},"memory":{"total":1,"available":1},"gpu":1})");
  std::string int_version = with_resources(R"({"name":"a","address":"b","version":1,"resources":)");
  std::string long_version = with_resources(R"({"name":"a","address":"b","version":")" +
                                            std::string(65, '9') + R"(","resources":)");
  expect_errors(decode_register_request,
                {{"", "malformed JSON"},
                 {int_version, "field 'version' must be a string"},
                 {long_version, "field 'version' is longer than 64 characters"},
                 {"{", "malformed JSON"},
                 {"[]", "expected a JSON object"},
                 {"null", "expected a JSON object"},
                 {R"({"name":"a","address":"b"})", "missing field 'resources'"},
                 {no_name, "missing field 'name'"},
                 {int_name, "field 'name' must be a string"},
                 {extra, "unknown field 'extra'"},
                 {inf_cpu, "must be a finite number"},
                 {huge_mem, "must be an integer"},
                 {gpu, "unknown field 'gpu' in 'resources'"},
                 {R"({"name":"a","address":"b","resources":[]})", "resources must be an object"},
                 {ok + " junk", "malformed JSON"}});
}

TEST(NodeProtocol, BadRegisterResponsesAndHeartbeatsAreErrors) {
  expect_errors(
      decode_register_response,
      {{R"({"heartbeat_interval_ms":5000,"subnet":"s","cluster_network":"c"})",
        "missing field 'id'"},
       {R"({"id":"n","heartbeat_interval_ms":0,"subnet":"s","cluster_network":"c"})",
        "between 1 ms and a day"},
       {R"({"id":"n","heartbeat_interval_ms":9223372036854775807,"subnet":"s","cluster_network":"c"})",
        "between 1 ms and a day"},
       {R"({"id":"n","heartbeat_interval_ms":1e20,"subnet":"s","cluster_network":"c"})",
        "must be an integer"},
       {R"({"id":"n","heartbeat_interval_ms":"5000","subnet":"s","cluster_network":"c"})",
        "must be an integer"},
       {R"({"id":"n","heartbeat_interval_ms":5000,"subnet":"s"})",
        "missing field 'cluster_network'"}});
  expect_errors(decode_heartbeat, {{with_resources(R"({"resources":)"), "missing field 'id'"},
                                   {R"({"id":"n"})", "missing field 'resources'"},
                                   {R"({"id":"n","resources":{"cpu":1}})", "must be an object"},
                                   {R"({"id":["n"],"resources":{}})", "must be a string"}});
}

TEST(NodeProtocol, BadAllocationsQueriesAreErrors) {
  auto message = [](std::string_view node, std::string_view index, std::string_view wait) {
    auto q = decode_allocations_query(node, index, wait);
    return q ? std::string("decoded") : q.error().message;
  };
  EXPECT_EQ(message("", "1", "1"), "missing query parameter 'node'");
  EXPECT_EQ(message("node-1&index=9", "1", "1"), "query parameter 'node' is not a node id");
  EXPECT_EQ(message("node-1", "12abc", ""), "query parameter 'index' must be an integer");
  EXPECT_EQ(message("node-1", "99999999999999999999", ""),
            "query parameter 'index' must be an integer");
  EXPECT_EQ(message("node-1", "", " 5"), "query parameter 'wait_ms' must be an integer");
  EXPECT_EQ(message("node-1", "", "1.5"), "query parameter 'wait_ms' must be an integer");
}

// A desired-allocations answer with `item` as its one allocation.
std::string desired_with(std::string_view item) {
  return R"({"index":1,"allocations":[)" + std::string(item) + R"(],"registries":{},"routes":[]})";
}

std::string alloc_with(std::string_view spec, std::string_view extra = "") {
  return R"({"alloc":{"id":"a-1","kind":"task","node":"node-1","desired":"run",)" +
         std::string(extra) + R"("spec":)" + std::string(spec) + R"(},"status":"running"})";
}

TEST(NodeProtocol, BadDesiredAllocationsAreErrors) {
  constexpr std::string_view kSpec = R"({"image":"busybox","cpu":1,"memory":4194304})";
  ASSERT_EQ(error_of(decode_desired_allocations, desired_with(alloc_with(kSpec))), "decoded");
  std::string deep = std::string(200, '[') + std::string(200, ']') + "}";
  expect_errors(
      decode_desired_allocations,
      {{R"({"allocations":[],"registries":{},"routes":[]})", "missing field 'index'"},
       {R"({"index":1,"registries":{},"routes":[]})", "missing field 'allocations'"},
       {R"({"index":1,"allocations":[]})", "missing field 'routes'"},
       {R"({"index":1.5,"allocations":[],"routes":[]})", "field 'index' must be an integer"},
       {R"({"index":18446744073709551615,"allocations":[],"routes":[]})", "must be an integer"},
       {R"({"index":1,"allocations":{},"routes":[]})", "field 'allocations' must be an array"},
       {R"({"index":1,"allocations":[],"routes":[],"more":1})", "unknown field 'more'"},
       {desired_with("3"), "'allocations' items must be objects"},
       {desired_with(R"({"status":"running"})"), "missing field 'alloc'"},
       {desired_with(R"({"alloc":{},"status":"running","x":1})"), "unknown field 'x'"},
       {desired_with(R"({"alloc":[],"status":"running"})"), "'allocation' must be an object"},
       {desired_with(alloc_with(kSpec, R"("id2":1,)")), "unknown field 'id2' in 'allocation'"},
       {desired_with(R"({"alloc":{"id":"a-1","kind":"task","node":"n","desired":"run","spec":)" +
                     std::string(kSpec) + R"(},"status":"zombie"})"),
        "unknown allocation status"},
       {desired_with(alloc_with(R"({"image":"b","cpu":"1","memory":1})")), "must be a finite"},
       {desired_with(alloc_with(R"({"image":"b","cpu":1,"memory":1,"gpu":1})")),
        "unknown field 'gpu' in 'spec'"},
       {desired_with(alloc_with(R"({"image":"b","cpu":1,"memory":1,"init":"yes"})")),
        "field 'init' must be true or false"},
       {desired_with(alloc_with(R"({"image":"b","cpu":1,"memory":1,"port":4294967297})")),
        "field 'port' is out of range"},
       {desired_with(alloc_with(R"({"image":"b","cpu":1,"memory":1,"volumes":[{"name":"v"}]})")),
        "missing field 'size'"},
       {desired_with(alloc_with(R"({"image":"b","cpu":1,"memory":1,"route":{"host":"h",)"
                                R"("path":"/","tls":"pem"}})")),
        "'tls' must be an object"},
       {desired_with(alloc_with(R"({"image":"b","cpu":1,"memory":1,"env":{"A":[1]}})")),
        "'env.A' must be a string"},
       {desired_with(alloc_with(kSpec, R"("created_at_ms":9223372036854775807,)")),
        "field 'created_at_ms' is out of range"},
       {R"({"index":1,"allocations":[],"routes":[],"registries":[]})",
        "field 'registries' must be an object"},
       {R"({"index":1,"allocations":[],"routes":[],"registries":{"h":"x"}})",
        "'registries.h' must be an object"},
       {R"({"index":1,"allocations":[],"routes":[],"registries":{"h":{"username":"u",)"
        R"("password":"p","insecure":"no"}}})",
        "field 'insecure' must be true or false"},
       {R"({"index":1,"allocations":[],"routes":[],"pulls":{"images":[]}})",
        "missing field 'deploy'"},
       {R"({"index":1,"allocations":[],"routes":[],"pulls":{"deploy":"d","images":[1]}})",
        "field 'images' must be an array of strings"},
       {R"({"index":1,"allocations":[],"routes":[],"remove_volumes":"v"})",
        "field 'remove_volumes' must be an array of strings"},
       {R"({"index":1,"allocations":[],"routes":[{"service":"s"}]})", "missing field 'route'"},
       {R"({"index":1,"allocations":[],"routes":[{"service":"s","route":{"host":"h",)"
        R"("path":"/","https_redirect":1}}]})",
        "field 'https_redirect' must be true or false"},
       {R"({"index":1,"allocations":)" + deep, "malformed JSON"}});
}

TEST(NodeProtocol, BadReportsAreErrors) {
  static constexpr std::string_view kState = R"({"id":"a-1","status":"running")";
  auto report = [](std::string_view fields) {
    return R"({"node":"node-1","allocations":[)" + std::string(kState) + std::string(fields) +
           "}]}";
  };
  ASSERT_EQ(error_of(decode_status_report, report("")), "decoded");
  expect_errors(decode_status_report,
                {{R"({"allocations":[]})", "missing field 'node'"},
                 {R"({"node":"n"})", "missing field 'allocations'"},
                 {R"({"node":"n","allocations":[[]]})", "'allocation state' must be an object"},
                 {report(R"(,"pid":4294967296)"), "field 'pid' is out of range"},
                 {report(R"(,"restarts":-99999999999)"), "field 'restarts' is out of range"},
                 {report(R"(,"exit_code":"3")"), "field 'exit_code' must be an integer"},
                 {report(R"(,"cpu_seconds":1e999)"), "field 'cpu_seconds' must be a finite"},
                 {report(R"(,"started_at_ms":-9223372036854775807)"), "is out of range"},
                 {report(R"(,"volume_used":{"data":"1G"})"), "bad volume_used"},
                 {report(R"(,"volume_used":[])"), "'volume_used' must be an object"},
                 {report(R"(,"color":"red")"), "unknown field 'color' in 'allocation state'"},
                 {R"({"node":"n","allocations":[{"id":"../x","status":"running"}]})",
                  "invalid allocation id"},
                 {R"({"node":"n","allocations":[{"id":"a-1","status":"zombie"}]})",
                  "unknown allocation status"}});
  expect_errors(
      decode_pulls_report,
      {{R"({"node":"n","images":[]})", "missing field 'deploy'"},
       {R"({"node":"n","deploy":"d"})", "missing field 'images'"},
       {R"({"node":"n","deploy":"d","images":["busybox"]})", "'images' items must be objects"},
       {R"({"node":"n","deploy":"d","images":[{"error":"x"}]})", "missing field 'image'"},
       {R"({"node":"n","deploy":"d","images":[{"image":"b","error":5}]})",
        "field 'error' must be a string"},
       {R"({"node":"n","deploy":"d","images":[{"image":"b","digest":"x"}]})",
        "unknown field 'digest' in 'images'"}});
  expect_errors(decode_volumes_report,
                {{R"({"node":"n","volumes":{}})", "field 'volumes' must be an array"},
                 {R"({"node":"n","volumes":[{"name":1}]})", "field 'name' must be a string"},
                 {R"({"node":"n","volumes":[{}]})", "missing field 'name'"},
                 {R"({"node":1,"volumes":[]})", "field 'node' must be a string"}});
}

// The log channel: requests the control plane queues for a node, the chunks it sends back.
TEST(NodeProtocol, LogChannelMessagesRoundTripAndKeepTheirExactJson) {
  NodeRequests requests{{{"a1", "t-9", "", 10, true}, {"b2", "", "web", std::nullopt, false}},
                        {"c3"}};
  expect_round_trip(requests, decode_node_requests);
  expect_round_trip(NodeRequests{}, decode_node_requests);
  EXPECT_EQ(encode(requests), R"({"logs":[{"id":"a1","follow":true,"alloc":"t-9","tail":10},)"
                              R"({"id":"b2","follow":false,"service":"web"}],"cancel":["c3"]})");

  LogChunk first{"node-1", "a1", 200, "text/event-stream", false, "data: {}\n\n", false};
  LogChunk whole{"node-1", "b2", 404, "application/json", true, R"({"error":"no log"})", true};
  LogChunk last{"node-1", "a1", 0, "", false, "", true};
  for (const auto& c : {first, whole, last}) expect_round_trip(c, decode_log_chunk);
  EXPECT_EQ(encode(last), R"({"node":"node-1","request":"a1","data":"","end":true})");
  expect_round_trip(LogChunkAnswer{false}, decode_log_chunk_answer);
  EXPECT_EQ(encode(LogChunkAnswer{true}), R"({"more":true})");

  RequestsQuery query{"node-1", "9f00", milliseconds(30000)};
  EXPECT_EQ(encode(query), "node=node-1&session=9f00&wait_ms=30000");
  auto back = decode_requests_query("node-1", "9f00", "30000");
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, query);
}

TEST(NodeProtocol, BadLogChannelMessagesAreErrors) {
  expect_errors(
      decode_node_requests,
      {{R"({"logs":[{"id":"a1","follow":true}],"cancel":[]})", "exactly one of"},
       {R"({"logs":[{"id":"a1","alloc":"t","service":"w","follow":true}],"cancel":[]})",
        "exactly one of"},
       {R"({"logs":[{"id":"A1","alloc":"t","follow":true}],"cancel":[]})", "hex"},
       {R"({"logs":[{"id":"a1","alloc":"t","tail":-1,"follow":true}],"cancel":[]})", "negative"},
       {R"({"logs":[]})", "cancel"}});
  expect_errors(
      decode_log_chunk,
      {{R"({"node":"node-1","request":"a1"})", "data"},
       {R"({"node":"node-1","request":"a1","data":"","status":99,"content_type":""})",
        "100 to 599"},
       {R"({"node":"node-1","request":"a1","data":"","content_type":"x"})", "only with 'status'"},
       {R"({"node":"node-1","request":"a1","data":"","whole":true})", "has a 'status'"},
       {R"({"node":"node-1","request":"a1","data":"","end":false})", "true or absent"},
       {R"({"node":"../x","request":"a1","data":""})", "not a node id"},
       {R"({"node":"node-1","request":"a1","data":"","extra":1})", "extra"}});
  auto message = [](std::string_view node, std::string_view session, std::string_view wait) {
    auto q = decode_requests_query(node, session, wait);
    return q ? std::string("decoded") : q.error().message;
  };
  EXPECT_EQ(message("", "ab", "1"), "missing query parameter 'node'");
  EXPECT_EQ(message("node-1", "", "1"),
            "query parameter 'session' must be 1 to 64 lower-case hex digits");
  EXPECT_EQ(message("node-1", "xyz", "1"),
            "query parameter 'session' must be 1 to 64 lower-case hex digits");
  EXPECT_EQ(message("node-1", "ab", "1s"), "query parameter 'wait_ms' must be an integer");
}

}  // namespace
}  // namespace mill::model
