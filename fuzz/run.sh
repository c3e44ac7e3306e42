#!/usr/bin/env bash
# Runs every fuzz target for SECS seconds (default 60) on stable Rust (no sanitizer: `-s none`) and
# prints the executions per target. Corpora are kept in fuzz/corpus/<target>. TARGETS="a b" runs only
# those. Seeds for the newer targets come from `cargo run --manifest-path seeds/Cargo.toml`.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-60}
ALL="frames session_code sealed pairing rendezvous screen_msgs fleet_msgs frame_apply inventory_apply"
for t in ${TARGETS:-$ALL}; do
  mkdir -p corpus/$t artifacts/$t
  # libFuzzer stops at the first crash and writes it to artifacts/<target>/ (crash-, oom-, timeout-,
  # leak-): the crashes are the files this run added there.
  before=$(ls artifacts/$t | wc -l)
  out=$(cargo fuzz run -s none -O "$t" corpus/$t -- -max_total_time="$SECS" -print_final_stats=1 2>&1 || true)
  runs=$(echo "$out" | grep -oE 'stat::number_of_executed_units: *[0-9]+' | grep -oE '[0-9]+$' || echo 0)
  crashes=$(( $(ls artifacts/$t | wc -l) - before ))
  echo "$t executions=$runs crashes=$crashes"
done
