#pragma once

// JSON helpers shared by the API, the node protocol and the stored records, on
// Boost.JSON. Parsing is strict: a body with a field we do not know is an error, so a
// typo in a request never passes silently.

#include <boost/json/value.hpp>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "model/node.h"

namespace mill::model {

namespace json = boost::json;

// Parses text as one JSON object whose keys are all in `allowed`.
// kInvalidArgument naming the problem otherwise ("unknown field 'valu'").
Result<json::object> parse_object(std::string_view text,
                                  std::initializer_list<std::string_view> allowed);
// The same, its values allocated from `storage` (e.g. a json::monotonic_resource the
// caller frees whole once it has copied out what it keeps).
Result<json::object> parse_object(std::string_view text,
                                  std::initializer_list<std::string_view> allowed,
                                  json::storage_ptr storage);
// The same checks on a value nested in a parsed document: an object whose keys are all
// in `allowed`; `where` names it in the message ("unknown field 'x' in 'spec'").
Result<const json::object*> as_object(const json::value& v, std::string_view where,
                                      std::initializer_list<std::string_view> allowed);
// The field `key` of `obj` as an array (an empty one when absent and not required).
Result<const json::array*> get_array(const json::object& obj, std::string_view key, bool required);

// Typed field readers: kInvalidArgument when present with the wrong type, or when
// absent and required. Numbers must be finite; get_int32 also rejects what an int
// cannot hold.
Result<std::string> get_string(const json::object& obj, std::string_view key, bool required);
Result<double> get_number(const json::object& obj, std::string_view key, bool required);
Result<int64_t> get_int(const json::object& obj, std::string_view key, bool required);
Result<int> get_int32(const json::object& obj, std::string_view key, bool required);
Result<bool> get_bool(const json::object& obj, std::string_view key, bool required);
Result<std::vector<std::string>> get_strings(const json::object& obj, std::string_view key,
                                             bool required);

std::string serialize(const json::value& v);

// Nodes as the API shows them (GET /v1/nodes).
json::object to_json(const Node& node);
json::object to_json(const Resources& r);
Result<Resources> resources_from_json(const json::value& v);

}  // namespace mill::model
