#!/usr/bin/env bash
# The whole test suite: installs what is missing, then lints, builds and tests everything.
# This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh

step() { printf '\n=== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "media crate for wasm32"
cargo build -p lockstep-media --target wasm32-unknown-unknown

step "cargo test"
cargo test --workspace
