#pragma once

// WWW-Authenticate challenges (RFC 7235) as registries send them (pure):
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."
//   Basic realm="basic-realm"

#include <map>
#include <string>
#include <string_view>

#include "common/result.h"

namespace mill::image {

struct AuthChallenge {
  std::string scheme;                         // lowercased: "bearer", "basic"
  std::map<std::string, std::string> params;  // keys lowercased, values unquoted
};

// The first challenge in the header value. kInvalidArgument when it cannot be read.
Result<AuthChallenge> parse_auth_challenge(std::string_view header);

std::string base64_encode(std::string_view bytes);

}  // namespace mill::image
