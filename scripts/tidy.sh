#!/usr/bin/env bash
# clang-tidy (checks in .clang-tidy) on the given files, or on the C++ files changed
# since BASE (default: the last commit), using a compile database without GCC's
# precompiled headers, which clang cannot read.
#   scripts/tidy.sh                 # files changed in the last commit and uncommitted
#   scripts/tidy.sh src/net/*.cc    # these files
#   BASE=main~5 scripts/tidy.sh     # files changed since main~5
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build/tidy -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DCMAKE_DISABLE_PRECOMPILE_HEADERS=ON -DMILL_BUILD_BENCH=OFF >/dev/null

if (($#)); then
  files=("$@")
else
  mapfile -t files < <(git diff --name-only --diff-filter=AM "${BASE:-HEAD~1}" -- 'src/*.cc' 'tests/*.cc')
fi
((${#files[@]})) || { echo "no C++ files to check"; exit 0; }
clang-tidy -p build/tidy --quiet "${files[@]}"
