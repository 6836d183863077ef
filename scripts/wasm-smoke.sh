#!/usr/bin/env bash
# Builds the core for wasm32-unknown-unknown (`default-features = false`: no adapter, no
# clock, no entropy source) inside the small module in tests/wasm/, and has Node drive a whole
# exchange through it: login, token request, response, TokensUpdated, AccessReady, the bearer,
# then a refresh at the proactive deadline. Fails on any failed step and on any trap.
#
#   scripts/wasm-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target=wasm32-unknown-unknown
# Idempotent: does nothing when the target is installed.
rustup target add "$target"

# Inside the crate's own target directory, which is not committed.
target_dir="$PWD/target/wasm-smoke"
cargo build --manifest-path tests/wasm/Cargo.toml --target "$target" --release \
    --target-dir "$target_dir"

node tests/wasm/run.mjs "$target_dir/$target/release/tokenflow_wasm_smoke.wasm"
