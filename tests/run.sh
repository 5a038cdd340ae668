#!/usr/bin/env bash
# The whole test suite: installs what is missing, then lints, builds and tests everything:
# Rust unit and integration tests (ffmpeg, the relay binary on loopback), the wasm32 builds,
# the player package, and the browser tests (headless Debian Chromium through Playwright,
# real relay, real player). This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n=== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "clippy (native, and the player for wasm32)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p lockstep-player --target wasm32-unknown-unknown -- -D warnings

step "media crate for wasm32"
cargo build -p lockstep-media --target wasm32-unknown-unknown

step "player package (wasm-pack, wasm-opt, size budget)"
bash player-wasm/build.sh

step "cargo test"
cargo test --workspace

step "browser tests (headless Chromium)"
cargo build -q -p lockstep-relay -p lockstep-demo
node --test --test-concurrency=1 tests/browser/
