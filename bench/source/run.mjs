// Source → ingest delay of the test source, per track: how long after a frame's barcode time
// (when the source handed it to the encoder) its FLV tag reaches a server, and how far the
// audio trails the video of the same instant. The first leg of glass-to-glass
// (docs/LATENCY-BENCH.md, "where each millisecond goes").
//
//   node bench/source/run.mjs [--seconds 20] [--size 640x360] [--no-audio]
//
// A small HTTP server on 127.0.0.1 takes the source's FLV `PUT` (as the relay's
// /ingest/NAME would), timestamps every tag as it completes, and keeps the bytes. Then ffmpeg
// decodes the kept video and `lockstep-test-source --read` reads each frame's barcode:
// video delay = arrival − burned time, frame by frame. Audio carries no barcode, but the
// source puts both tracks on one timeline (demo/src/retime.rs): the stream time `ts` of
// either track is `ts` ms after the source's start, and start = burned − ts of any video
// frame (their median is used), so audio delay = arrival − (start + ts). Not a test.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const opts = { seconds: 20, size: '640x360', audio: true };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--seconds') opts.seconds = Number(process.argv[++i]);
  else if (a === '--size') opts.size = process.argv[++i];
  else if (a === '--no-audio') opts.audio = false;
  else {
    console.log('node bench/source/run.mjs [--seconds 20] [--size 640x360] [--no-audio]');
    process.exit(a === '-h' || a === '--help' ? 0 : 2);
  }
}
const source = ['release', 'debug'].map((p) => path.join(ROOT, 'target', p, 'lockstep-test-source')).find(existsSync);
if (!source) throw new Error('no lockstep-test-source: cargo build --release -p lockstep-demo');

/** Tags of an FLV byte stream as they complete: [{ type, ts, size, at }], `at` in Unix ms. */
function flvTags() {
  let buf = Buffer.alloc(0);
  let header = false;
  const tags = [];
  const chunks = [];
  return {
    tags,
    chunks,
    push(chunk, at) {
      chunks.push(chunk);
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!header) {
          if (buf.length < 13) return;
          buf = buf.subarray(13);
          header = true;
        }
        if (buf.length < 11) return;
        const size = buf.readUIntBE(1, 3);
        if (buf.length < 15 + size) return;
        const ts = (buf.readUIntBE(4, 3) | (buf[7] << 24)) >>> 0;
        tags.push({ type: buf[0] & 0x1f, ts, size, at, body0: buf[11], body1: buf[12] });
        buf = buf.subarray(15 + size);
      }
    },
  };
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const summary = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, min: s[0], p50: pct(s, 50), p95: pct(s, 95), max: s[s.length - 1] };
};
const fmt = (o) => `n ${o.n}, min ${o.min.toFixed(1)}, p50 ${o.p50.toFixed(1)}, p95 ${o.p95.toFixed(1)}, max ${o.max.toFixed(1)} ms`;

const flv = flvTags();
let done;
const ended = new Promise((r) => { done = r; });
const server = http.createServer((req, res) => {
  req.socket.setNoDelay(true);
  req.on('data', (c) => flv.push(c, performance.timeOrigin + performance.now()));
  req.on('end', () => { res.end(); done(); });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const { port } = server.address();
const args = ['--url', `http://127.0.0.1:${port}/ingest/probe`, '--size', opts.size, '--duration', String(opts.seconds),
  ...(opts.audio ? [] : ['--no-audio'])];
const child = spawn(source, args, { stdio: ['ignore', 'inherit', 'inherit'] });
const timer = setTimeout(() => child.kill('SIGTERM'), (opts.seconds + 20) * 1000);
await new Promise((r) => child.on('exit', r));
clearTimeout(timer);
await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
server.close();

// Barcodes of the received video, in order.
const flvBytes = Buffer.concat(flv.chunks);
const dec = spawnSync('ffmpeg', ['-v', 'error', '-i', 'pipe:0', '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', 'pipe:1'],
  { input: flvBytes, maxBuffer: 1 << 30 });
if (dec.status !== 0) throw new Error(`ffmpeg could not decode the capture: ${dec.stderr}`);
const read = spawnSync(source, ['--read', '-', '--size', opts.size], { input: dec.stdout, maxBuffer: 1 << 26 });
const burned = String(read.stdout).trim().split('\n').map((l) => { const m = /t=(\d+)/.exec(l); return m ? Number(m[1]) : null; });

// Video frames (AVC NALU packets, not the sequence header), in decode = display order
// (the source makes no B-frames by default).
const frames = flv.tags.filter((t) => t.type === 9 && t.body1 === 1);
if (frames.length < burned.length) throw new Error(`${frames.length} frames received, ${burned.length} decoded`);
const video = [];
const starts = [];
burned.forEach((b, i) => {
  if (b === null) return;
  video.push(frames[i].at - b);
  starts.push(b - frames[i].ts);
});
const start = summary(starts).p50;
const spread = summary(starts);
const audio = flv.tags.filter((t) => t.type === 8 && !(t.body0 >> 4 === 10 && t.body1 === 0)).map((t) => t.at - (start + t.ts));

console.log(`\nlockstep-test-source ${args.slice(2).join(' ')} → HTTP PUT on 127.0.0.1`);
console.log(`video frames: ${frames.length} received, ${video.length} barcodes read`);
console.log(`timeline check: burned − ts spread ${(spread.max - spread.min).toFixed(1)} ms (p5–p95 ${(pct([...starts].sort((a, b) => a - b), 95) - pct([...starts].sort((a, b) => a - b), 5)).toFixed(1)} ms)`);
console.log(`video, burned time → tag received: ${fmt(summary(video))}`);
if (audio.length) console.log(`audio, stream time → tag received: ${fmt(summary(audio))}`);
