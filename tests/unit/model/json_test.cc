#include "model/json.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <cmath>

#include "model/names.h"

namespace mill::model {
namespace {

TEST(ParseObject, StrictAboutShapeAndFields) {
  EXPECT_TRUE(parse_object(R"({"value":"x"})", {"value"}));
  auto unknown = parse_object(R"({"value":"x","valu":1})", {"value"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message, "unknown field 'valu'");
  EXPECT_FALSE(parse_object("{", {"value"}));
  EXPECT_FALSE(parse_object("[1]", {"value"}));
  EXPECT_FALSE(parse_object("", {"value"}));
  EXPECT_FALSE(parse_object(R"({"value":"x"} trailing)", {"value"}));
}

TEST(ParseObject, TypedFields) {
  auto o = *parse_object(R"({"s":"x","n":1.5,"i":3,"neg":-1})", {"s", "n", "i", "neg"});
  EXPECT_EQ(*get_string(o, "s", true), "x");
  EXPECT_FALSE(get_string(o, "n", true));
  EXPECT_FALSE(get_string(o, "missing", true));
  EXPECT_EQ(*get_string(o, "missing", false), "");
  EXPECT_EQ(*get_number(o, "n", true), 1.5);
  EXPECT_EQ(*get_number(o, "i", true), 3.0);
  EXPECT_EQ(*get_int(o, "i", true), 3);
  EXPECT_FALSE(get_int(o, "n", true));
}

TEST(Serialize, PlainNumbers) {
  json::object o{{"cpu", 0.3}, {"total", 2.0}, {"n", 5}, {"s", "a\"b"}, {"nan", std::nan("")}};
  EXPECT_EQ(serialize(o), R"({"cpu":0.3,"total":2,"n":5,"s":"a\"b","nan":null})");
}

TEST(Names, ValidNames) {
  EXPECT_TRUE(is_valid_name("database_url"));
  EXPECT_TRUE(is_valid_name("A-b.c_9"));
  EXPECT_TRUE(is_valid_name(std::string(128, 'x')));
  EXPECT_FALSE(is_valid_name(std::string(129, 'x')));
  EXPECT_FALSE(is_valid_name(""));
  EXPECT_FALSE(is_valid_name("."));
  EXPECT_FALSE(is_valid_name(".."));
  EXPECT_FALSE(is_valid_name("a/b"));
  EXPECT_FALSE(is_valid_name("a b"));
  EXPECT_FALSE(is_valid_name("a\nb"));
  EXPECT_FALSE(is_valid_name(std::string("a\0b", 3)));
}

TEST(Resources, RoundTripAndRejectsNonsense) {
  Resources r{2, 1.5, 1024, 512};
  auto back = resources_from_json(to_json(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, r);
  json::value neg =
      json::parse(R"({"cpu":{"total":-1,"available":0},"memory":{"total":1,"available":1}})");
  EXPECT_FALSE(resources_from_json(neg));
  json::value extra =
      json::parse(R"({"cpu":{"total":1,"available":0,"x":1},"memory":{"total":1,"available":1}})");
  EXPECT_FALSE(resources_from_json(extra));
  // Disk is optional: an agent that does not report it leaves it unknown (-1).
  EXPECT_EQ(back->disk_total, -1);
  EXPECT_FALSE(to_json(r).contains("disk"));
  r.disk_total = 5000;
  r.disk_available = 4000;
  back = resources_from_json(to_json(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, r);
  json::value bad_disk = json::parse(
      R"({"cpu":{"total":1,"available":0},"memory":{"total":1,"available":1},"disk":{"total":-5,"available":1}})");
  EXPECT_FALSE(resources_from_json(bad_disk));
}

// A node's cpu and memory in the API: the agent's total and available (measured idle),
// used (measured), reserved (its live allocations' specs) and allocatable (capacity
// minus reserved, what placement counts; nothing while it takes no allocations).
TEST(NodeJson, NamesUsedReservedAndAllocatableApart) {
  Node n;
  n.id = "node-1";
  n.status = NodeStatus::kReady;
  n.resources = {4, 0.5, 1000, 300};
  n.load = {3, 1.5, 400};
  auto o = to_json(n);
  const auto& cpu = o.at("cpu").as_object();
  const auto& mem = o.at("memory").as_object();
  EXPECT_EQ(cpu.at("total").to_number<double>(), 4);
  EXPECT_EQ(cpu.at("available").to_number<double>(), 0.5);
  EXPECT_EQ(cpu.at("used").to_number<double>(), 3.5);
  EXPECT_EQ(cpu.at("reserved").to_number<double>(), 1.5);
  EXPECT_EQ(cpu.at("allocatable").to_number<double>(), 2.5);
  EXPECT_EQ(mem.at("total").to_number<int64_t>(), 1000);
  EXPECT_EQ(mem.at("available").to_number<int64_t>(), 300);
  EXPECT_EQ(mem.at("used").to_number<int64_t>(), 700);
  EXPECT_EQ(mem.at("reserved").to_number<int64_t>(), 400);
  EXPECT_EQ(mem.at("allocatable").to_number<int64_t>(), 600);
  EXPECT_EQ(o.at("allocations").to_number<int64_t>(), 3);
  EXPECT_FALSE(o.contains("disk")) << "not reported, not shown";
  n.resources.disk_total = 10000;
  n.resources.disk_available = 9000;
  n.load.disk = 4000;
  o = to_json(n);
  const auto& disk = o.at("disk").as_object();
  EXPECT_EQ(disk.at("total").to_number<int64_t>(), 10000);
  EXPECT_EQ(disk.at("available").to_number<int64_t>(), 9000);
  EXPECT_EQ(disk.at("reserved").to_number<int64_t>(), 4000);
  EXPECT_EQ(disk.at("allocatable").to_number<int64_t>(), 6000);

  // Sums of decimal reservations print as decimals.
  n.load.cpu = 0.1 + 0.2;
  o = to_json(n);
  EXPECT_EQ(serialize(o.at("cpu").as_object().at("reserved")), "0.3");
  EXPECT_EQ(serialize(o.at("cpu").as_object().at("allocatable")), "3.7");

  n.draining = true;
  n.status = NodeStatus::kDraining;
  o = to_json(n);
  EXPECT_EQ(o.at("cpu").as_object().at("allocatable").to_number<double>(), 0);
  EXPECT_EQ(o.at("memory").as_object().at("allocatable").to_number<int64_t>(), 0);
  EXPECT_EQ(o.at("cpu").as_object().at("used").to_number<double>(), 3.5);

  n.draining = false;
  n.status = NodeStatus::kDown;
  n.resources.cpu_available = 0;  // as the registry shows a down node
  n.resources.memory_available = 0;
  o = to_json(n);
  EXPECT_EQ(o.at("cpu").as_object().at("allocatable").to_number<double>(), 0);
  EXPECT_EQ(o.at("cpu").as_object().at("used").to_number<double>(), 0);
  EXPECT_EQ(o.at("memory").as_object().at("used").to_number<int64_t>(), 0);
}

}  // namespace
}  // namespace mill::model
