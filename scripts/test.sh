#!/usr/bin/env bash
# Installs what the build and the tests need, builds, and runs every test with ctest:
# unit, system and integration tests on the dev build, then all of them again except
# the integration tests that run containers under AddressSanitizer +
# UndefinedBehaviorSanitizer.
#
# Every test must run: a test that ctest reports skipped, disabled or not run fails
# this script, as does a run that executed no test at all. CI is set for the tests
# (unless the caller set it), so a test whose needs are missing (root, runc, a loop
# device) fails instead of skipping (tests/support/require.h).
#
# For developers: arguments go to every ctest run (e.g. `-R Deploy` or `-L unit`), and
# MILL_TEST_PRESETS picks the builds (default "dev asan"; the asan build has no
# container tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=${CI:-true}

scripts/install-deps.sh

status=0

# ctest_all PRESET: runs the preset's tests, then fails unless every one of them ran.
ctest_all() {
  local preset=$1
  local junit="$PWD/build/$preset/ctest-junit.xml"
  rm -f "$junit"
  ctest --preset "$preset" --output-junit "$junit" "${ctest_args[@]}" || status=1
  scripts/check-junit.sh "$junit" || status=1
}

ctest_args=("$@")
for preset in ${MILL_TEST_PRESETS:-dev asan}; do
  cmake --preset "$preset"
  cmake --build --preset "$preset"
  ctest_all "$preset"
done

exit $status
