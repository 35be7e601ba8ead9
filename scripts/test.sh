#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, format and lint checks, every test
# (unit, in-process, and the root-only kernel and namespace tests), and a short
# benchmark smoke run. Usage (as root): scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n==> %s\n' "$*"; }

step "set-up (packages, bpf-linker, bpffs)"
bash scripts/setup.sh

step "format"
cargo fmt --all -- --check

step "lint: host workspace"
cargo clippy --workspace --exclude c2wall-xdp --all-targets -- -D warnings

step "lint: XDP crate for bpfel-unknown-none (Debian toolchain)"
(cd ebpf/xdp && PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=aya_ebpf \
  /usr/bin/cargo clippy --release --target bpfel-unknown-none \
  --target-dir ../../target/bpf-clippy -- -D warnings)

step "build every binary the end-to-end tests run"
cargo build --workspace --exclude c2wall-xdp --bins

step "tests (unit, in-process, kernel verdicts, properties, namespaces and real traffic)"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
if grep -qE '^test result: FAILED|^error: ' target/test-output.txt; then
  exit 1
fi

step "Debian packages: build, install, upgrade while traffic flows, remove (alone: it installs on this machine)"
cargo test --workspace --test packages -- --ignored 2>&1 | tee -a target/test-output.txt
if grep -qE '^test result: FAILED|^error: ' target/test-output.txt; then
  exit 1
fi

step "benchmark and fuzz smoke runs (full runs, as root: target/release/c2wall-bench, target/release/c2wall-sync-bench, target/release/c2wall-tiers-bench, target/release/c2wall-bgp-bench, target/release/c2wall-fuzz --seconds 1800)"
cargo build --release --bin c2wall-bench --bin c2wall-agent --bin c2wall-sync-bench --bin c2wall-tiers-bench --bin c2wall-bgp-bench --bin c2wall-bgp --bin c2wall --bin c2wall-coordinator --bin c2wall-fuzz
target/release/c2wall-bench --quick
target/release/c2wall-sync-bench --quick
target/release/c2wall-sync-bench --quick --store postgres --replicas 2
target/release/c2wall-tiers-bench --quick
target/release/c2wall-bgp-bench --quick
target/release/c2wall-fuzz --seconds 20

passed=$(grep -oE 'test result: ok\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
printf '\nall checks passed: %s tests\n' "$passed"
