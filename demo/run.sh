#!/usr/bin/env bash
# The one-command demo: installs what is missing (tests/setup.sh), builds the relay, the test
# source (release) and the player package, starts the relay and the test source publishing
# channel "demo" over RTMP, waits until the channel is live, prints the page to open, and
# stays in the foreground until Ctrl-C, then stops both.
#
# Environment: LOCKSTEP_HTTP (default 127.0.0.1:8080) and LOCKSTEP_RTMP (default
# 127.0.0.1:1935) are the relay's listeners; LOCKSTEP_SOURCE_ARGS adds options to the test
# source (e.g. "--size 1280x720 --bitrate 4M"; see `lockstep-test-source --help`).
# Logs: target/demo/relay.log and target/demo/source.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

http="${LOCKSTEP_HTTP:-127.0.0.1:8080}"
rtmp="${LOCKSTEP_RTMP:-127.0.0.1:1935}"
channel=demo
key=demo

say() { printf 'demo: %s\n' "$*"; }

# A listener already there (another relay, an earlier demo, a media server) would make the
# relay fail to start: say so plainly instead.
port_taken() {
  local host="${1%:*}" port="${1##*:}"
  [ "$host" = "0.0.0.0" ] && host=127.0.0.1
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}
for addr in "$http" "$rtmp"; do
  if port_taken "$addr"; then
    say "$addr is already in use (is another relay or demo running?)."
    say "Stop it, or pick other addresses, e.g.:"
    say "  LOCKSTEP_HTTP=127.0.0.1:8081 LOCKSTEP_RTMP=127.0.0.1:1936 bash demo/run.sh"
    exit 1
  fi
done

bash tests/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

say "building the relay and the test source (release)"
cargo build --release -q -p lockstep-relay -p lockstep-demo
say "building the player"
bash player-wasm/build.sh

page_host="${http/#0.0.0.0:/127.0.0.1:}"
rtmp_host="${rtmp/#0.0.0.0:/127.0.0.1:}"
logs="$root/target/demo"
mkdir -p "$logs"
relay_pid=""
source_pid=""

stop_pid() { # PID NAME: SIGTERM, up to 5 s, then SIGKILL
  local pid="$1" i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$2 did not stop, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$source_pid$relay_pid" ]; then
    say "stopping the test source and the relay"
    stop_pid "$source_pid" "the test source"
    stop_pid "$relay_pid" "the relay"
    say "stopped"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# GET a relay path, print the body (node comes with tests/setup.sh; curl may not be there).
api() {
  node -e '
    require("http").get(process.argv[1], (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => { process.stdout.write(body); process.exit(res.statusCode === 200 ? 0 : 1); });
    }).on("error", () => process.exit(1));' "http://$page_host$1"
}
# The demo channel's figures as one line if it is live, else fail.
channel_live() {
  api /api/channels 2>/dev/null | node -e '
    const c = JSON.parse(require("fs").readFileSync(0, "utf8")).channels.find((c) => c.name === process.argv[1]);
    if (!c || !c.live || !c.video_frames) process.exit(1);
    console.log(`${c.width}x${c.height} ${c.video_codec} ${c.audio_codec || "no audio"}, ${c.frame_rate} fps declared, ${c.fps.toFixed(1)} fps and ${Math.round(c.bitrate_kbps)} kbit/s measured`);
  ' "$channel"
}

say "starting the relay (HTTP $http, RTMP $rtmp, publish key \"$key\")"
target/release/lockstep-relay --http "$http" --rtmp "$rtmp" --publish-key "$key" \
  >"$logs/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 100); do
  grep -q '^lockstep-relay: http://' "$logs/relay.log" && break
  if ! kill -0 "$relay_pid" 2>/dev/null; then
    relay_pid=""
    say "the relay failed to start:"; cat "$logs/relay.log"; exit 1
  fi
  sleep 0.1
done
grep -q '^lockstep-relay: http://' "$logs/relay.log" || { say "the relay did not come up in 10 s:"; cat "$logs/relay.log"; exit 1; }

say "starting the test source (channel \"$channel\" over RTMP)"
# shellcheck disable=SC2086 # LOCKSTEP_SOURCE_ARGS is split on purpose
target/release/lockstep-test-source --url "rtmp://$rtmp_host/live/$channel?key=$key" \
  ${LOCKSTEP_SOURCE_ARGS:-} >"$logs/source.log" 2>&1 &
source_pid=$!

figures=""
for _ in $(seq 100); do
  figures="$(channel_live)" && break
  if ! kill -0 "$source_pid" 2>/dev/null; then
    source_pid=""
    say "the test source stopped:"; cat "$logs/source.log"; exit 1
  fi
  sleep 0.2
done
if [ -z "$figures" ]; then
  say "channel \"$channel\" is not live after 20 s; logs:"
  tail -n 20 "$logs/source.log" "$logs/relay.log"
  exit 1
fi
sleep 1.5   # let the ingest rates settle over a full second
figures="$(channel_live || echo "$figures")"

cat <<EOF

  Lockstep demo is live: $figures

  Open   http://$page_host/?channel=$channel
         (the top-left barcode is the time each frame was made: docs/BARCODE.md)
  Also   http://$page_host/live/$channel.flv (ffplay, VLC)   http://$page_host/api/channels
  Logs   $logs/relay.log, $logs/source.log

  Press Ctrl-C to stop the relay and the test source.

EOF

# Stay in the foreground until Ctrl-C, or until either process exits on its own.
set +e
while kill -0 "$relay_pid" 2>/dev/null && kill -0 "$source_pid" 2>/dev/null; do
  sleep 1 &
  wait $!
done
if ! kill -0 "$relay_pid" 2>/dev/null; then
  wait "$relay_pid"; relay_pid=""
  say "the relay exited; last lines of its log:"; tail -n 20 "$logs/relay.log"
else
  wait "$source_pid"; source_pid=""
  say "the test source exited; last lines of its log:"; tail -n 20 "$logs/source.log"
fi
exit 1
