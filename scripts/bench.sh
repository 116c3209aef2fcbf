#!/usr/bin/env bash
# Runs every benchmark binary built under BUILD/bench, one after another, then the
# benchmarks that are scripts (bench/*.sh, each given BUILD: those with real
# processes, such as a devnet and the provider's daemon).
set -euo pipefail
build=${1:-build}
shopt -s nullglob
ran=0
for b in "$build"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b"
  ran=1
done
[ $ran -eq 1 ] || echo "no benchmarks built"
for s in "$(dirname "$0")"/../bench/*.sh; do
  echo "== $(basename "$s" .sh)"
  "$s" "$build"
done
