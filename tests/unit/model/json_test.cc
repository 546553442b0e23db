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
}

}  // namespace
}  // namespace mill::model
