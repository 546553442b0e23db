#!/usr/bin/env bash
# check-junit.sh FILE: fails unless the ctest JUnit report FILE (ctest --output-junit)
# shows that tests ran and that none was skipped, disabled or not run. ctest itself
# exits 0 when a test is skipped (gtest's GTEST_SKIP, or every test of a suite whose
# SetUpTestSuite failed), so a green ctest alone can hide whole suites.
set -euo pipefail
junit=${1:?usage: check-junit.sh CTEST_JUNIT_XML}

if [[ ! -s $junit ]]; then
  echo "check-junit: no report at $junit: ctest did not run" >&2
  exit 1
fi

# The counts are attributes of the <testsuite> element, one per line.
count() { grep -m1 -oE "^[[:space:]]*$1=\"[0-9]+\"" "$junit" | grep -oE '[0-9]+' || echo 0; }
tests=$(count tests)
skipped=$(count skipped)
disabled=$(count disabled)
failures=$(count failures)

echo "check-junit: $tests tests, $failures failed, $skipped skipped, $disabled disabled ($junit)"
if ((tests == 0)); then
  echo "check-junit: FAILED: no test ran" >&2
  exit 1
fi
if ((skipped + disabled > 0)); then
  echo "check-junit: FAILED: every test must run; these did not:" >&2
  grep -oE '<testcase name="[^"]*"[^>]*status="(notrun|disabled)"' "$junit" |
    sed -E 's/<testcase name="([^"]*)".*status="([a-z]+)"/  \1 (\2)/' >&2
  exit 1
fi
