#include "common/version.h"

namespace mill {

// MILL_VERSION is defined for this file only (common/CMakeLists.txt), so a version
// bump rebuilds one translation unit.
std::string_view version() { return MILL_VERSION; }

}  // namespace mill
