#!/usr/bin/env node
// Glass-to-glass latency benchmark: Lockstep against flv.js, mpegts.js and hls.js, one test
// source, one machine, headless Chromium, the same probe (www/probe.js) on every player.
//
//   node bench/latency/run.mjs [--seconds 30] [--warmup 5] [--size 640x360]
//                              [--only lockstep,flvjs,...] [--no-doc]
//
// What runs (all on 127.0.0.1, fresh ports, stopped at the end):
//   test source ──RTMP──▶ Lockstep relay ──WS──▶ Lockstep player           (rows "Lockstep")
//                             │ HTTP-FLV
//                             ├─ ffmpeg -c copy ─RTMP─▶ node-media-server ─WS-FLV─▶ flv.js, mpegts.js
//                             ├─ ffmpeg -c copy ─RTMP─▶ nginx-rtmp ─HLS─▶ hls.js
//                             └─ ffmpeg -c copy ─RTMP─▶ Lockstep relay (channel "hop") ─WS─▶ Lockstep
// The source publishes once; the peers are fed from the relay without re-encoding, through an
// ffmpeg copy hop. The "Lockstep via the copy hop" row goes through the same kind of hop, so
// it measures what the hop adds and is the like-for-like comparison with the peers.
//
// Each system is played alone (one page at a time, so they do not fight for the 2 cores):
// page load, first presented frame, `--warmup` seconds, then `--seconds` of measurement.
// Results: a table on stdout and, unless --no-doc, in docs/LATENCY-BENCH.md between the
// results markers (the analysis around them is written by hand).
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync, appendFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { children, firstLine, freePort, getJson, sleep, startProcess, stopChild, waitFor } from '../common/util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required'];
const NGINX = '/usr/sbin/nginx';
const RTMP_MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';
const DOC = path.join(ROOT, 'docs', 'LATENCY-BENCH.md');

// ---------------------------------------------------------------------------------------------
// Options

function parseOptions(argv) {
  const o = { seconds: 30, warmup: 5, size: '640x360', only: null, doc: true, bitrate: '2M', maxLoad: 0, audio: true, audioCodec: 'aac' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--seconds') o.seconds = Number(v());
    else if (a === '--warmup') o.warmup = Number(v());
    else if (a === '--size') o.size = v();
    else if (a === '--bitrate') o.bitrate = v();
    else if (a === '--only') o.only = v().split(',');
    else if (a === '--no-doc') o.doc = false;
    else if (a === '--no-audio') o.audio = false;
    else if (a === '--audio-codec') o.audioCodec = v();
    else if (a === '--max-load') o.maxLoad = Number(v());
    else if (a === '--trace') o.trace = v();
    else if (a === '-h' || a === '--help') {
      console.log('node bench/latency/run.mjs [--seconds 30] [--warmup 5] [--size 640x360|1280x720] [--bitrate 2M] [--only ID,ID] [--max-load L] [--no-audio] [--no-doc]');
      console.log('  --no-audio: the source sends video only (the video path alone, as WebRTC video-only figures)');
      console.log('  --audio-codec aac|opus: the tone as AAC (default) or Opus with 10 ms frames (Enhanced RTMP); Opus: Lockstep direct rows only');
      console.log('  --max-load L: before each row, wait (up to 3 min) until the 1-minute load average is below L');
      console.log('  --trace FILE: write each Lockstep row\'s once-a-second player stats and glass-to-glass figures (JSON lines)');
      process.exit(0);
    } else throw new Error(`unknown option ${a} (--help)`);
  }
  if (!(o.seconds > 0 && o.seconds <= 600)) throw new Error('--seconds must be in (0, 600]');
  if (!(o.warmup >= 0 && o.warmup <= 120)) throw new Error('--warmup must be in [0, 120]');
  if (!/^\d+x\d+$/.test(o.size)) throw new Error('--size is WxH');
  if (!['aac', 'opus'].includes(o.audioCodec)) throw new Error('--audio-codec is aac or opus');
  return o;
}

// ---------------------------------------------------------------------------------------------
// Processes: every child is tracked and stopped at the end (and killed on exit as a last resort).

// Last resort (an exception or a signal bypassed the orderly stop in main): nginx gets SIGTERM,
// so its master takes its workers down with it; the rest SIGKILL.
process.on('exit', () => {
  for (const c of children) try { c.proc.kill(c.name === 'nginx' ? 'SIGTERM' : 'SIGKILL'); } catch { /* gone */ }
});
// SIGINT / SIGTERM: finish the current row, skip the others, stop everything in order.
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`# ${sig}: stopping after this row (again to stop at once)`);
  });
}





// ---------------------------------------------------------------------------------------------
// The systems

/** nginx + the RTMP module, from Debian, installed with apt-get when missing. */
function ensureNginx() {
  if (existsSync(NGINX) && existsSync(RTMP_MODULE)) return;
  console.log('# installing nginx and libnginx-mod-rtmp with apt-get (the system service is not used)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'nginx', 'libnginx-mod-rtmp'], { stdio: 'inherit', env, timeout: 300000 });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env, timeout: 300000 });
    r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'nginx', 'libnginx-mod-rtmp'], { stdio: 'inherit', env, timeout: 300000 });
  }
  if (!existsSync(NGINX) || !existsSync(RTMP_MODULE)) throw new Error('nginx with the RTMP module could not be installed');
}

/** nginx in the foreground with its own prefix, pid, logs and HLS folder, on loopback ports. */
function nginxConfig(dir, httpPort, rtmpPort) {
  return `# written by bench/latency/run.mjs
load_module ${RTMP_MODULE};
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
rtmp {
  server {
    listen 127.0.0.1:${rtmpPort};
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path ${dir}/hls;
      hls_fragment 1s;
      hls_playlist_length 3s;
    }
  }
}
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:${httpPort};
    location /hls/ {
      alias ${dir}/hls/;
      add_header Cache-Control no-cache;
      add_header Access-Control-Allow-Origin *;
    }
  }
}
`;
}

/** The static server for the peer pages: peer.html, the probe, the players' npm dists. */
function startStatic(port) {
  const nm = path.join(HERE, 'node_modules');
  const files = {
    '/peer.html': [path.join(HERE, 'peer.html'), 'text/html'],
    '/probe.js': [path.join(ROOT, 'www', 'probe.js'), 'text/javascript'],
    '/dist/flv.min.js': [path.join(nm, 'flv.js', 'dist', 'flv.min.js'), 'text/javascript'],
    '/dist/mpegts.js': [path.join(nm, 'mpegts.js', 'dist', 'mpegts.js'), 'text/javascript'],
    '/dist/hls.min.js': [path.join(nm, 'hls.js', 'dist', 'hls.min.js'), 'text/javascript'],
  };
  for (const [f] of Object.values(files)) if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm ci\` in bench/latency`);
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    if (!f) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': f[1], 'content-length': statSync(f[0]).size, 'cache-control': 'no-store' });
    createReadStream(f[0]).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

function version(pkg) {
  try { return JSON.parse(readFileSync(path.join(HERE, 'node_modules', pkg, 'package.json'), 'utf8')).version; } catch { return '?'; }
}

// ---------------------------------------------------------------------------------------------
// Measuring one page

/**
 * Opens `url` in a fresh browser context; waits for the first presented frame, `warmup` s, then
 * measures for `seconds` s. Resolves to the row's figures.
 */
async function measure(browser, row, opts) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`.slice(0, 300));
  });
  page.on('response', (res) => {
    if (res.status() >= 400 && !/favicon\.ico$/.test(res.url())) problems.push(`HTTP ${res.status()} ${res.url()}`);
  });
  try {
    await page.goto(row.url, { timeout: 20000 });
    await page.waitForFunction(() => !!window.lockstepProbe, null, { timeout: 15000, polling: 50 });
    // Stalls: `waiting` events on the video once it has shown a frame.
    await page.evaluate(() => {
      const v = window.benchVideo || document.querySelector('lockstep-player').video;
      window.benchVideo = v;
      window.benchWaiting = [];
      v.addEventListener('waiting', () => {
        if (window.lockstepProbe.summary().firstFrameMs !== null) window.benchWaiting.push(performance.now());
      });
    });
    const startup = await page.waitForFunction(() => {
      const s = window.lockstepProbe.summary();
      return s.firstFrameMs !== null && s.firstFrameMs;
    }, null, { timeout: 30000, polling: 50 }).then((h) => h.jsonValue())
      .catch(async (e) => {
        const info = await page.evaluate(() => ({ errors: window.benchErrors, s: window.lockstepProbe.summary() })).catch(() => null);
        throw new Error(`no frame presented within 30 s (${e.message.split('\n')[0]}): ${JSON.stringify(info)} ${problems.join('; ')}`);
      });
    await sleep(opts.warmup * 1000);
    const t0 = await page.evaluate(() => {
      window.lockstepProbe.reset();
      window.benchWaitingAtReset = window.benchWaiting.length;
      return performance.now();
    });
    // Player-reported figures (Lockstep: its stats, sampled once a second).
    const playerStats = [];
    const end = Date.now() + opts.seconds * 1000;
    while (Date.now() < end) {
      await sleep(Math.min(1000, Math.max(0, end - Date.now())));
      const st = await page.evaluate(() => {
        const el = document.querySelector('lockstep-player');
        const s = el && el.player && el.player.stats;
        const last = window.lockstepProbe.last();
        return s ? { latencyMs: s.latencyMs, bufferMs: s.bufferMs, playbackRate: s.playbackRate, targetMs: s.targetLatencyMs,
          jitterMs: s.jitterMs, seeks: s.seeks, g2g: last && last.latencyMs, arrivalP95Ms: s.arrivalP95Ms,
          audioArrivalP95Ms: s.audioArrivalP95Ms, audioLagMs: s.audioLagMs, avOffsetMs: s.avOffsetMs,
          audioScheduled: s.audioScheduled, audioDropped: s.audioDropped,
          decodeP95Ms: s.decodeP95Ms, displayDelayMs: s.displayDelayMs, sharedDelayMs: s.sharedDelayMs,
          requiredMs: s.requiredLatencyMs, writeMarginMs: s.writeMarginMs, refreshDepth: s.refreshDepth,
          refreshMisses: s.refreshMisses, droppedLate: s.framesDroppedLate, clockOffsetMs: s.clockOffsetMs, rttMs: s.rttMs, audioDecodeP95Ms: s.audioDecodeP95Ms,
          // Glass-to-glass over the last second's frames.
          g2gLastSecond: (() => {
            const since = performance.timeOrigin + performance.now() - 1000;
            const l = window.lockstepProbe.samples().filter((x) => x.displayMs >= since).map((x) => x.latencyMs)
              .sort((a, b) => a - b);
            return l.length ? { n: l.length, p50: l[Math.floor(l.length / 2)], max: l[l.length - 1] } : null;
          })() } : null;
      });
      if (st) {
        playerStats.push(st);
        if (opts.trace) appendFileSync(opts.trace, `${JSON.stringify({ row: row.id, t: playerStats.length, ...st })}\n`);
      }
    }
    const r = await page.evaluate((start) => {
      const s = window.lockstepProbe.summary();
      const v = window.benchVideo;
      const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
      return {
        s,
        elapsed: (performance.now() - start) / 1000,
        stalls: window.benchWaiting.length - window.benchWaitingAtReset,
        stallsTotal: window.benchWaiting.length,
        dropped: q.droppedVideoFrames,
        errors: window.benchErrors || [],
        playerStart: window.lockstepPlayerStart,
      };
    }, t0);
    const avg = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
    const withBoth = playerStats.filter((x) => typeof x.latencyMs === 'number' && typeof x.g2g === 'number');
    return {
      ...row,
      ok: r.s.count > 0,
      p50: r.s.p50, p95: r.s.p95, max: r.s.max, min: r.s.min, mean: r.s.mean,
      samples: r.s.count, decodeFailures: r.s.decodeFailures,
      startupMs: startup,
      stalls: r.stalls, stallsTotal: r.stallsTotal,
      fps: r.s.presentedFrames / r.elapsed,
      decodedShare: r.s.presentedFrames ? r.s.count / r.s.presentedFrames : 0,
      playerLatencyMs: avg(withBoth.map((x) => x.latencyMs)),
      g2gAtStatsMs: avg(withBoth.map((x) => x.g2g)),
      bufferMs: avg(playerStats.map((x) => x.bufferMs).filter((x) => typeof x === 'number')),
      rate: avg(playerStats.map((x) => x.playbackRate).filter((x) => typeof x === 'number')),
      targetMs: avg(playerStats.map((x) => x.targetMs).filter((x) => typeof x === 'number')),
      jitterMs: avg(playerStats.map((x) => x.jitterMs).filter((x) => typeof x === 'number')),
      arrivalP95Ms: avg(playerStats.map((x) => x.arrivalP95Ms).filter((x) => typeof x === 'number')),
      decodeP95Ms: avg(playerStats.map((x) => x.decodeP95Ms).filter((x) => typeof x === 'number')),
      displayDelayMs: avg(playerStats.map((x) => x.displayDelayMs).filter((x) => typeof x === 'number')),
      audioArrivalP95Ms: avg(playerStats.map((x) => x.audioArrivalP95Ms).filter((x) => typeof x === 'number')),
      audioLagMs: avg(playerStats.map((x) => x.audioLagMs).filter((x) => typeof x === 'number')),
      avOffsetMs: avg(playerStats.map((x) => x.avOffsetMs).filter((x) => typeof x === 'number')),
      audioShare: (() => {
        const a = playerStats[0], b = playerStats[playerStats.length - 1];
        if (!a || typeof b.audioScheduled !== 'number') return null;
        const sched = b.audioScheduled - a.audioScheduled, drop = b.audioDropped - a.audioDropped;
        return sched + drop > 0 ? sched / (sched + drop) : null;
      })(),
      seeks: playerStats.length ? playerStats[playerStats.length - 1].seeks - playerStats[0].seeks : null,
      errors: [...r.errors, ...problems].slice(0, 5),
    };
  } finally {
    await context.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const f0 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : String(Math.round(x)));

function table(results) {
  const head = '| System | Settings | p50 ms | p95 ms | max ms | startup ms | stalls | fps presented | decoded | load |';
  const sep = '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|';
  const lines = results.map((r) => r.ok
    ? `| ${r.system} | ${r.settings} | ${f0(r.p50)} | ${f0(r.p95)} | ${f0(r.max)} | ${f0(r.startupMs)} | ${r.stalls} | ${r.fps.toFixed(1)} | ${(100 * r.decodedShare).toFixed(0)} % | ${r.load.map((x) => x.toFixed(1)).join('→')} |`
    : `| ${r.system} | ${r.settings} | failed: ${(r.error || 'no barcode decoded').replace(/\|/g, '/').slice(0, 200)} | | | | | | | |`);
  return [head, sep, ...lines].join('\n');
}

function lockstepTable(results) {
  const rows = results.filter((r) => r.ok && r.playerLatencyMs !== null && r.playerLatencyMs !== undefined);
  if (!rows.length) return '';
  const pct = (x) => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(0)} %`);
  return ['| Lockstep row | glass-to-glass mean ms | player-reported latency ms (relay now − ingest of frame on screen) | difference ≈ source → relay ingest + display ms | effective target ms | video arrival p95 ms | decode p95 ms (WebCodecs) | display delay ms (WebCodecs) | audio arrival p95 ms | audio lag ms (WebCodecs) | A/V offset ms | audio played | arrival jitter ms | buffer ms | playback rate | seeks |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.system}, ${r.settings} | ${f0(r.g2gAtStatsMs)} | ${f0(r.playerLatencyMs)} | ${f0(r.g2gAtStatsMs - r.playerLatencyMs)} | ${f0(r.targetMs)} | ${f0(r.arrivalP95Ms)} | ${f0(r.decodeP95Ms)} | ${f0(r.displayDelayMs)} | ${f0(r.audioArrivalP95Ms)} | ${f0(r.audioLagMs)} | ${f0(r.avOffsetMs)} | ${pct(r.audioShare)} | ${f0(r.jitterMs)} | ${f0(r.bufferMs)} | ${r.rate?.toFixed(3) ?? '–'} | ${r.seeks ?? '–'} |`)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  const command = `node bench/latency/run.mjs ${process.argv.slice(2).join(' ')}`.trim();
  const started = new Date();
  ensureNginx();

  const relayBin = ['release', 'debug'].map((p) => path.join(ROOT, 'target', p, 'lockstep-relay')).find(existsSync);
  if (!relayBin) throw new Error('no lockstep-relay: cargo build --release -p lockstep-relay');
  if (!existsSync(path.join(ROOT, 'www', 'player', 'lockstep-player.js'))) throw new Error('the player is not built: bash player-wasm/build.sh');
  const sourceBin = ['release', 'debug'].map((p) => path.join(ROOT, 'target', p, 'lockstep-test-source')).find(existsSync);
  if (!sourceBin) throw new Error('no lockstep-test-source: cargo build --release -p lockstep-demo');
  const { chromium } = await import(path.join(ROOT, 'node_modules', 'playwright-core', 'index.mjs'));

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lockstep-latency-'));
  for (const d of ['hls', 'nms', 'tmp']) mkdirSync(path.join(tmp, d), { recursive: true });
  chmodSync(tmp, 0o777);
  chmodSync(path.join(tmp, 'hls'), 0o777);
  const ports = {};
  for (const k of ['relayHttp', 'relayRtmp', 'nmsHttp', 'nmsRtmp', 'nginxHttp', 'nginxRtmp', 'static']) ports[k] = await freePort();

  let browser;
  let staticServer;
  const results = [];
  try {
    // Servers.
    const relay = await startProcess('relay', relayBin, ['--http', `127.0.0.1:${ports.relayHttp}`,
      '--rtmp', `127.0.0.1:${ports.relayRtmp}`, '--www', path.join(ROOT, 'www')], { ready: /lockstep-relay: http:\/\// });
    await startProcess('node-media-server', process.execPath, [path.join(HERE, 'nms.cjs'), String(ports.nmsHttp),
      String(ports.nmsRtmp), path.join(tmp, 'nms')], { cwd: HERE, ready: /HTTP server listening/i });
    writeFileSync(path.join(tmp, 'nginx.conf'), nginxConfig(tmp, ports.nginxHttp, ports.nginxRtmp));
    const nginx = await startProcess('nginx', NGINX, ['-p', tmp, '-c', path.join(tmp, 'nginx.conf'), '-e', path.join(tmp, 'error.log')]);
    staticServer = await startStatic(ports.static);
    await waitFor('nginx listening', () => new Promise((res) => {
      const s = net.connect(ports.nginxRtmp, '127.0.0.1', () => { s.destroy(); res(true); });
      s.on('error', () => res(false));
    }), 10000).catch((e) => { throw new Error(`${e.message}\n${nginx.log}\n${existsSync(path.join(tmp, 'error.log')) ? readFileSync(path.join(tmp, 'error.log'), 'utf8') : ''}`); });

    // The one source, published once to the relay.
    const rows = buildRows(opts, ports);
    const direct = ['lockstep-webcodecs', 'lockstep-mse'];
    if (opts.audio && opts.audioCodec === 'opus' && rows.some((r) => !direct.includes(r.id))) {
      throw new Error(`--audio-codec opus: only --only ${direct.join(',')} (the copy hop's ffmpeg 5.1 cannot put Opus in FLV, and the peers do not play Enhanced RTMP audio)`);
    }
    // Long enough for every row (and every --max-load wait); stopped at the end anyway.
    const total = rows.length * (opts.seconds + opts.warmup + 30 + (opts.maxLoad > 0 ? 180 : 0)) + 120;
    const [W] = opts.size.split('x');
    const srcArgs = ['--url', `rtmp://127.0.0.1:${ports.relayRtmp}/live/bench`, '--size', opts.size, '--fps', '30',
      '--bitrate', opts.bitrate, '--gop-seconds', '1', '--bframes', '0', '--duration', String(total),
      ...(opts.audio ? ['--audio-codec', opts.audioCodec] : ['--no-audio'])];
    const source = await startProcess('test source', sourceBin, srcArgs);
    const audioName = opts.audioCodec === 'opus' ? 'Opus' : 'AAC';
    const sourceDesc = `${path.relative(ROOT, sourceBin)} (x264 ultrafast/zerolatency and ${audioName} in two ffmpeg children, ${opts.audio ? `${audioName} audio` : 'no audio track'})`;
    console.log(`# source: ${sourceDesc}, ${opts.size} 30 fps ${opts.bitrate} 1 s GOP, no B-frames (width ${W})`);
    await waitFor('relay channel bench live', async () => {
      const { channels } = await getJson(`http://127.0.0.1:${ports.relayHttp}/api/channels`);
      return channels.some((c) => c.name === 'bench' && c.live);
    }, 20000).catch((e) => { throw new Error(`${e.message}\n${source.log}`); });

    // The copy hops, from the relay's HTTP-FLV: to node-media-server, nginx-rtmp, and back into
    // the relay as channel "hop".
    // (Only when a row plays through them.)
    if (rows.some((r) => !['lockstep-webcodecs', 'lockstep-mse'].includes(r.id))) {
      const flvIn = `http://127.0.0.1:${ports.relayHttp}/live/bench.flv`;
      // ffmpeg 5.1 with `-fflags nobuffer` never outputs a video-only FLV input: only with audio.
      const nobuffer = opts.audio ? ['-fflags', 'nobuffer'] : [];
      const hop = (name, out) => startProcess(name, 'ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin',
        ...nobuffer, '-i', flvIn, '-c', 'copy', '-f', 'flv', out]);
      await hop('copy to nms', `rtmp://127.0.0.1:${ports.nmsRtmp}/live/bench`);
      await hop('copy to nginx', `rtmp://127.0.0.1:${ports.nginxRtmp}/live/bench`);
      await hop('copy to relay', `rtmp://127.0.0.1:${ports.relayRtmp}/live/hop`);
      await waitFor('relay channel hop live', async () => {
        const { channels } = await getJson(`http://127.0.0.1:${ports.relayHttp}/api/channels`);
        return channels.some((c) => c.name === 'hop' && c.live);
      }, 20000);
      await waitFor('nginx HLS playlist', () => existsSync(path.join(tmp, 'hls', 'bench.m3u8')), 20000);
      await sleep(3000); // a few fragments in the playlist
    }

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
    const browserVersion = browser.version();
    for (const row of rows) {
      if (interrupted) break;
      if (opts.maxLoad > 0) {
        const until = Date.now() + 180000;
        while (os.loadavg()[0] >= opts.maxLoad && Date.now() < until) await sleep(5000);
      }
      process.stdout.write(`# ${row.system} (${row.settings}) ... `);
      try {
        const load0 = os.loadavg()[0];
        const r = await measure(browser, row, opts);
        r.load = [load0, os.loadavg()[0]];
        results.push(r);
        console.log(r.ok ? `p50 ${f0(r.p50)} p95 ${f0(r.p95)} max ${f0(r.max)} startup ${f0(r.startupMs)} stalls ${r.stalls} fps ${r.fps.toFixed(1)}${r.errors.length ? ` errors: ${r.errors.join('; ')}` : ''}` : 'no barcode decoded');
      } catch (e) {
        results.push({ ...row, ok: false, error: e.message.split('\n')[0] });
        console.log(`failed: ${e.message}`);
      }
    }
    const relayStats = await getJson(`http://127.0.0.1:${ports.relayHttp}/api/stats`).catch(() => null);

    const machine = `${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}`;
    const env = [
      `Chromium ${browserVersion} headless (${CHROMIUM}, --disable-gpu: software decode and compositing)`,
      `node ${process.version}; ${firstLine('ffmpeg', ['-version'])}; ${firstLine(NGINX, ['-v'])} + libnginx-mod-rtmp`,
      `flv.js ${version('flv.js')}, mpegts.js ${version('mpegts.js')}, hls.js ${version('hls.js')}, node-media-server ${version('node-media-server')}`,
      `relay: ${path.relative(ROOT, relayBin)}; source: ${sourceDesc}`,
    ];
    const out = [
      `Run ${started.toISOString().replace(/\.\d+Z$/, 'Z')}: \`${command}\``,
      '',
      `Machine: ${machine}.`,
      ...env.map((l) => `- ${l}`),
      `- Source: ${opts.size}, 30 fps, ${opts.bitrate} CBR, 1 s GOP, no B-frames; measurement ${opts.seconds} s per row after the first frame + ${opts.warmup} s warm-up; rows run one after another.`,
      '',
      table(results),
      '',
      'Startup: navigation start → first presented frame (expectedDisplayTime). Stalls: `waiting` events in the measurement window (since the first frame: ' +
        results.map((r) => `${r.id} ${r.stallsTotal ?? '–'}`).join(', ') + '). fps presented: new frames composited per second (source: 30). Decoded: share of presented frames whose barcode decoded. Load: the machine\'s 1-minute load average at the row\'s start → end (2 cores: above ~2, the figures include CPU starvation).',
      '',
      lockstepTable(results),
      '',
      relayStats ? `Relay totals at the end: frames_skipped ${relayStats.totals?.frames_skipped}, viewers' stalls ${relayStats.channels?.map((c) => `${c.name} ${c.summary?.stalls}`).join(', ')}.` : '',
    ].join('\n');
    console.log(`\n${out}\n`);
    if (opts.doc) writeDoc(out);
  } finally {
    await browser?.close().catch(() => {});
    staticServer?.close();
    // Source and hops first (they publish), then the servers.
    const order = ['test source', 'stand-in source', 'copy to nms', 'copy to nginx', 'copy to relay', 'node-media-server', 'nginx', 'relay'];
    for (const name of order) for (const c of [...children]) if (c.name === name) await stopChild(c, name.includes('source') ? 'SIGINT' : 'SIGTERM');
    for (const c of [...children]) await stopChild(c);
    rmSync(tmp, { recursive: true, force: true });
  }
}

function buildRows(opts, ports) {
  const relay = `http://127.0.0.1:${ports.relayHttp}`;
  const peer = (kind, src, config) => `http://127.0.0.1:${ports.static}/peer.html?kind=${kind}&src=${encodeURIComponent(src)}&config=${encodeURIComponent(JSON.stringify(config))}`;
  const wsFlv = `ws://127.0.0.1:${ports.nmsHttp}/live/bench.flv`;
  const hls = `http://127.0.0.1:${ports.nginxHttp}/hls/bench.m3u8`;
  const mpegtsTuned = { isLive: true, enableStashBuffer: false, liveBufferLatencyChasing: true,
    liveBufferLatencyMaxLatency: 0.3, liveBufferLatencyMinRemain: 0.1, liveSync: true };
  const all = [
    { id: 'lockstep-webcodecs', system: 'Lockstep, WebCodecs mode', settings: 'default (auto mode picks it); shared delay D chosen by the relay', url: `${relay}/?channel=bench&probe=1&mode=webcodecs` },
    { id: 'lockstep-mse', system: 'Lockstep, MSE mode', settings: 'mode=mse; shared delay D chosen by the relay', url: `${relay}/?channel=bench&probe=1&mode=mse` },
    { id: 'lockstep-hop', system: 'Lockstep, MSE mode, via the copy hop', settings: 'mode=mse; relay → ffmpeg -c copy → relay, as the peers are fed', url: `${relay}/?channel=hop&probe=1&mode=mse` },
    { id: 'flvjs', system: 'flv.js (WS-FLV, node-media-server)', settings: 'isLive, enableStashBuffer false',
      url: peer('flvjs', wsFlv, { isLive: true, enableStashBuffer: false }) },
    { id: 'mpegts', system: 'mpegts.js (WS-FLV, node-media-server)', settings: 'isLive, liveBufferLatencyChasing',
      url: peer('mpegts', wsFlv, { isLive: true, liveBufferLatencyChasing: true }) },
    { id: 'mpegts-tuned', system: 'mpegts.js (WS-FLV, node-media-server)', settings: 'tuned hardest: stash off, chase max 0.3 s / min remain 0.1 s, liveSync',
      url: peer('mpegts', wsFlv, mpegtsTuned) },
    { id: 'hlsjs', system: 'hls.js (HLS, nginx-rtmp)', settings: 'lowLatencyMode, liveSyncDurationCount 1; 1 s fragments, 3 s playlist',
      url: peer('hlsjs', hls, { lowLatencyMode: true, liveSyncDurationCount: 1 }) },
  ];
  return opts.only ? all.filter((r) => opts.only.includes(r.id)) : all;
}

const START = '<!-- results:start (written by bench/latency/run.mjs) -->';
const END = '<!-- results:end -->';

function writeDoc(out) {
  let doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : `# Latency benchmark\n\n${START}\n${END}\n`;
  const a = doc.indexOf(START);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) doc += `\n${START}\n${END}\n`;
  const i = doc.indexOf(START);
  const j = doc.indexOf(END);
  doc = `${doc.slice(0, i + START.length)}\n${out}\n${doc.slice(j)}`;
  writeFileSync(DOC, doc);
  console.log(`# wrote ${path.relative(ROOT, DOC)}`);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exitCode = 1;
});
