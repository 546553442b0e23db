#pragma once

#include <string_view>

namespace mill {

// This build's version, "0.1.0": the project version in the top CMakeLists.txt.
// Agents report it when they register, and `mill nodes` shows it per node.
std::string_view version();

}  // namespace mill
