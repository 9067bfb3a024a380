#!/usr/bin/env bash
# The inner loop: unit and integration tests on the host target's dev
# profile (dependencies optimised, see Cargo.toml), no cross builds, VMs or
# packages. Arguments go to cargo test (e.g. tests/quick.sh config_file).
# The whole suite is tests/all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo test "$@"
