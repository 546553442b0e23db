#!/usr/bin/env bash
# The test of scripts/check-edges.sh: runs it on small fake trees in a temp dir and
# checks that it passes a clean one and fails, naming the line, each bad one.
#
# The fake modules link: api -> model -> common, agent -> model. main.cc and tests/ may
# include anything.
set -euo pipefail
check=$(cd "$(dirname "$0")/../../.." && pwd)/scripts/check-edges.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# module NAME DEPS_LINE: src/NAME with a CMakeLists.txt and one header.
module() {
  mkdir -p "$tree/src/$1"
  printf 'file(GLOB sources *.cc)\n%s\n' "$2" >"$tree/src/$1/CMakeLists.txt"
  echo '#pragma once' >"$tree/src/$1/$1.h"
}

# A clean tree: direct and transitive deps, a self include, a system header named like a
# module, a multi-line DEPS with a comment naming a module it does not link.
# shellcheck disable=SC2016 # ${sources} is for CMake, literally
fresh_tree() {
  tree=$tmp/$1
  module common 'mill_library(common SOURCES ${sources} DEPS Threads::Threads)'
  module model 'mill_library(model SOURCES ${sources} DEPS mill_common Boost::json)'
  module api "$(printf 'mill_library(api SOURCES ${sources} # DEPS mill_agent\n    DEPS mill_model)')"
  module agent '  mill_library(agent SOURCES ${sources} DEPS mill_model)'
  mkdir -p "$tree/src/agent/sub" "$tree/tests/unit/agent"
  printf '#include <net/if.h>\n#include "agent/agent.h"\n#include "model/model.h"\n#include "common/common.h"\n' \
    >"$tree/src/agent/sub/runner.cc"
  printf '#include "common/common.h"\n' >"$tree/src/api/api.cc" # DEPS on its second line
  printf '#include "api/api.h"\n#include "agent/agent.h"\n' >"$tree/src/main.cc"
  printf '#include "api/api.h"\n' >"$tree/tests/unit/agent/agent_test.cc"
}

# expect NAME STATUS [ERROR]: on the tree NAME the checker exits with STATUS, and what it
# prints, apart from its "check-edges:" summary, is exactly ERROR (nothing when not given).
expect() {
  local out status=0
  out=$("$check" "$tmp/$1" 2>&1) || status=$?
  if [[ $status == "$2" && $(grep -v '^check-edges: ' <<<"$out" || true) == "${3:-}" ]]; then
    echo "ok   $1"
  else
    echo "FAIL $1: expected exit $2 and \"${3:-}\", got exit $status:"$'\n'"$out"
    failures=$((failures + 1))
  fi
}

fresh_tree clean
expect clean 0

fresh_tree violation # agent includes api, which it does not link
printf '// a comment\n\n#include "api/api.h"\n' >>"$tree/src/agent/sub/runner.cc"
expect violation 1 'src/agent/sub/runner.cc:7: includes api/api.h, but mill_agent does not link mill_api'

fresh_tree upward # a lower module includes a higher one
printf '  #  include "model/model.h"\n' >"$tree/src/common/common.cc"
expect upward 1 'src/common/common.cc:1: includes model/model.h, but mill_common does not link mill_model'

fresh_tree comment # "# DEPS mill_agent" in api's CMakeLists.txt is no edge
printf '#include "agent/agent.h"\n' >>"$tree/src/api/api.cc"
expect comment 1 'src/api/api.cc:2: includes agent/agent.h, but mill_api does not link mill_agent'

fresh_tree dotdot # a relative path around the check
printf '#include "../api/api.h"\n' >"$tree/src/agent/agent.cc"
expect dotdot 1 'src/agent/agent.cc:1: includes ../api/api.h: include from src/ ("<module>/..."), without ..'

fresh_tree not_a_module # a header-only directory anyone could include
mkdir -p "$tree/src/shared" && echo '#pragma once' >"$tree/src/shared/x.h"
expect not_a_module 1 'src/shared: no mill_library(...) in src/shared/CMakeLists.txt: every directory under src/ is a module'

mkdir -p "$tmp/empty" # no module at all: a wrong root must not pass
expect empty 1 "no module under $tmp/empty/src"

((failures == 0)) || { echo "$failures failed"; exit 1; }
echo "check-edges test: all passed"
