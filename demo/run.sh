#!/usr/bin/env bash
# The one-command demo. The relay and player are not built yet (issues 3 and 4); until then
# this says so and shows what there is: the flv2mp4 remuxer on a test stream.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
echo "The live demo (relay + browser player) is not there yet: it arrives with the relay and player."
echo "Meanwhile, the media core remuxing a test stream:"
mkdir -p target/demo
ffmpeg -nostdin -y -v error -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440 \
  -t 5 -c:v libx264 -g 30 -c:a aac -f flv target/demo/test.flv
cargo run -q --release -p lockstep-media --example flv2mp4 -- target/demo/test.flv target/demo/test.mp4
echo "Wrote target/demo/test.mp4 (play it with ffplay or a browser)."
