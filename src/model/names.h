#pragma once

#include <string_view>

namespace mill::model {

// Names of secrets, volumes, services, tasks and registries' references:
// [A-Za-z0-9_.-]{1,128}, and never "." or ".." (they would read as paths).
bool is_valid_name(std::string_view name);

}  // namespace mill::model
