#!/usr/bin/env bash
# Builds the npm package lockstep-player into player-wasm/pkg/ (and copies it to www/player/
# for the relay's demo page): wasm-pack (release, --target web) with the pinned wasm-bindgen,
# then binaryen's wasm-opt from npm (never Debian's binaryen 108: its output fails to
# instantiate in Chromium), then the JavaScript wrapper and types. Prints the gzipped size
# and fails over the 120 KB budget.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$here"

export PATH="$root/node_modules/.bin:$HOME/.cargo/bin:$PATH"
wasm_opt="$root/node_modules/.bin/wasm-opt"
[ -x "$wasm_opt" ] || { echo "build.sh: $wasm_opt missing: run npm ci at the repository root (tests/setup.sh does)"; exit 1; }

rm -rf pkg
wasm-pack build --profile wasm-release --target web --no-pack --out-dir pkg/wasm --out-name lockstep_player . >/dev/null 2>pkg.log || { cat pkg.log; exit 1; }
"$wasm_opt" -Os --strip-debug pkg/wasm/lockstep_player_bg.wasm -o pkg/wasm/lockstep_player_bg.wasm
rm -f pkg/wasm/.gitignore pkg.log

cp js/lockstep-player.js js/lockstep-player.d.ts README.md package.json pkg/

wasm_gz=$(gzip -9 -c pkg/wasm/lockstep_player_bg.wasm | wc -c)
glue_gz=$(cat pkg/wasm/lockstep_player.js pkg/lockstep-player.js | gzip -9 | wc -c)
total=$((wasm_gz + glue_gz))
echo "lockstep-player: wasm $(stat -c %s pkg/wasm/lockstep_player_bg.wasm) bytes ($wasm_gz gzipped), JS $glue_gz gzipped, total $total bytes gzipped (budget 122880)"
[ "$total" -le 122880 ] || { echo "build.sh: over the 120 KB gzipped budget"; exit 1; }

rm -rf "$root/www/player"
cp -r pkg "$root/www/player"
