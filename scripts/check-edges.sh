#!/usr/bin/env bash
# check-edges.sh [ROOT]: fails when a file under ROOT/src/<module>/ includes a header of
# a module it does not link (STYLE.md: "a library sees the headers of what it links,
# nothing else").
#
# The edges are the DEPS of each `mill_library(<module> ... DEPS mill_x ...)` in
# ROOT/src/*/CMakeLists.txt, followed transitively (deps are PUBLIC, so a module links
# its deps' deps). A file under src/<module>/ (any depth) may include "<module>/..." and
# "<dep>/..." for every dep in that closure; "<other>/..." for any other src module is a
# violation. src/main.cc (wiring only) may include anything; tests/ are not checked.
# Only quoted includes are read: <net/if.h> is a system header, not src/net.
#
# Each violation is printed as `src/agent/foo.cc:12: includes api/log_source.h, but
# mill_agent does not link mill_api`; the exit status is 1 if there is any. Plain bash,
# grep and sed: no python on a fresh CI machine. Run by ctest (label unit).
set -euo pipefail
shopt -s nullglob
root=${1:-$(dirname "$0")/..}
cd "$root"

# Accepted violations, one `file include` a line, each with its reason above it. Empty:
# keep it that way, and fix an edge rather than adding to it.
allowed=(
)

declare -A deps=()    # module -> its direct mill_* deps, as module names
declare -A closure=() # module -> " dep dep ... " (itself included)
status=0
error() {
  echo "$*"
  status=1
}

# 1. Direct edges: the arguments of mill_library(...) up to its ")", comments dropped.
# Every directory under src/ is a module and must declare one (else a header-only
# directory would be a way around the check).
for path in src/*/; do
  dir=$(basename "$path")
  call=$(sed 's/#.*//' "${path}CMakeLists.txt" 2>/dev/null | tr '\n' ' ' |
    grep -oE 'mill_library\([^)]*\)' || true)
  if [[ -z $call ]]; then
    error "src/$dir: no mill_library(...) in src/$dir/CMakeLists.txt: every directory under src/ is a module"
    continue
  fi
  read -ra args <<<"${call#mill_library(}"
  args[-1]=${args[-1]%)}
  [[ ${args[-1]} ]] || unset 'args[-1]'
  if [[ ${args[0]} != "$dir" ]]; then
    error "src/$dir/CMakeLists.txt: declares mill_library(${args[0]}), expected mill_library($dir)"
  fi
  deps[$dir]=$(printf '%s\n' "${args[@]}" | sed -n '/^DEPS$/,$p' | sed -n 's/^mill_//p' | tr '\n' ' ')
done
((${#deps[@]})) || { echo "no module under $PWD/src"; exit 1; } # a wrong ROOT must not pass

# 2. Transitive closure of each module (a worklist walk).
for m in "${!deps[@]}"; do
  seen=" $m "
  read -ra todo <<<"${deps[$m]}"
  while ((${#todo[@]})); do
    d=${todo[0]}
    todo=("${todo[@]:1}")
    [[ $seen == *" $d "* ]] && continue
    seen+="$d "
    read -ra more <<<"${deps[$d]:-}"
    todo+=("${more[@]}")
  done
  closure[$m]=$seen
done

# 3. Every quoted include with a directory, in every C++ file of every module.
while IFS=: read -r file line target; do
  module=${file#src/}
  module=${module%%/*}
  other=${target%%/*}
  if [[ /$target/ == */../* ]]; then # "../api/x.h" would dodge the check below
    error "$file:$line: includes $target: include from src/ (\"<module>/...\"), without .."
    continue
  fi
  [[ -v "deps[$module]" ]] || continue # reported in step 1
  [[ -d src/$other ]] || continue       # not a src module (e.g. a third-party path)
  [[ ${closure[$module]} == *" $other "* ]] && continue
  # (an include of a directory that declares no mill_library is reported here too)
  for a in "${allowed[@]}"; do
    [[ $a == "$file $target" ]] && continue 2
  done
  error "$file:$line: includes $target, but mill_$module does not link mill_$other"
done < <(grep -rnoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+/[^"]+"' src \
  --include='*.h' --include='*.hpp' --include='*.cc' --include='*.cpp' --include='*.inc' |
  grep -v '^src/main\.cc:' | grep '^src/[^/]*/' |
  sed -E 's/^([^:]+):([0-9]+):.*"([^"]+)"$/\1:\2:\3/' | sort -t: -k1,1 -k2,2n)

if ((status)); then
  echo "check-edges: FAILED (edges: the DEPS of mill_library in src/*/CMakeLists.txt)" >&2
else
  echo "check-edges: ok: ${#deps[@]} modules, no include outside a module's DEPS"
fi
exit $status
