#!/usr/bin/env bash
# `make lint` (docs/build.md "Lint"): the format check, then clang-tidy-19 with the
# repository's .clang-tidy.
#   scripts/lint.sh [--format-only] [PATH...]    default PATHs: src tests bench tools
# Every .h/.cpp under the PATHs must be what clang-format (the one `make format` runs)
# would write; every source under the PATHs that lie in src/ is tidied, except the
# in-house BFT core (src/consensus/bft*, src/node/bft_*), which the network issue retires.
# clang-tidy reads build-lint/compile_commands.json: a clang-19 configuration compiled
# file by file (a unity batch would hide which file a finding is in); only the generated
# header is built there. LINT_BUILD and JOBS override the folder and the parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${LINT_BUILD:-build-lint}
JOBS=${JOBS:-$(nproc)}
format_only=0
if [ "${1:-}" = --format-only ]; then
  format_only=1
  shift
fi
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(src tests bench tools)

mapfile -t files < <(find "${paths[@]}" \( -name '*.h' -o -name '*.cpp' \) | sort)
echo "lint: clang-format --dry-run -Werror over ${#files[@]} files"
status=0
clang-format --dry-run -Werror "${files[@]}" || status=1
[ $format_only = 0 ] || exit $status
tidy=()
for p in "${paths[@]}"; do
  p=${p%/}
  case "$p" in src | src/*) tidy+=("$p") ;; esac
done
[ ${#tidy[@]} -gt 0 ] || exit $status
if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang-19 CXX=clang++-19 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGPUNET_UNITY_BUILD=OFF -DGPUNET_BENCH=OFF >/dev/null
fi
ninja -C "$BUILD" generated/crypto/bip39_english.h >/dev/null
# One regex: files under the given paths, not the BFT core (Python regex, as run-clang-tidy).
alts=$(printf '%s|' "${tidy[@]}")
regex="^$PWD/(?!src/consensus/bft|src/node/bft_)(${alts%|})(/|\$)"
echo "lint: clang-tidy-19 over ${tidy[*]} (-j $JOBS)"
run-clang-tidy-19 -p "$BUILD" -j "$JOBS" -quiet "$regex" || status=1
exit $status
