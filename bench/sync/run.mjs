#!/usr/bin/env node
// Sync-skew benchmark: several Lockstep viewers on one channel, one of them behind a jittery
// path; at the same wall-clock instants, which frame does each show? (DESIGN.md §3.)
//
//   node bench/sync/run.mjs [--viewers 4] [--proxied 1] [--seconds 30] [--warmup 10]
//                           [--mode mse|webcodecs|both] [--delay-ms N] [--jitter 50-150]
//                           [--up-jitter 0-0] [--bitrate 2M] [--settle 60] [--max-load L] [--relay PATH] [--no-doc]
//
// What runs, per mode (all on 127.0.0.1, fresh ports, stopped at the end of the mode):
//   lockstep-test-source ──RTMP──▶ relay ──WS──▶ viewer 1 … viewer N−K      (direct)
//                                    └── jitter proxy (50–150 ms per chunk, in order)
//                                          ──HTTP+WS──▶ viewer N−K+1 … N    (page and socket)
// Each viewer is a page `/?channel=sync&probe=1&mode=MODE` in its own browser context of one
// headless Chromium; a proxied viewer loads the page from the proxy's port, so the page's
// WebSocket (built from location.host) goes through the proxy too.
//
// Measurement: after every viewer presented a frame and `--warmup` s, a window of `--seconds`
// s. Each page's probe (www/probe.js) records, for every presented frame, its display time
// (expectedDisplayTime on the page's clock) and the burned wall-clock time of the source. At
// the end the samples of the window are read out and, for every instant T on a 100 ms grid
// common to all pages, each page's displayed burned time is that of its last sample with
// display time ≤ T; skew(T) = max − min across pages. The player's own statistics (clock
// offset and RTT, sync error, target) are polled once a second, the relay's D
// (/api/channels delay_ms) too. Results: a table on stdout and, unless --no-doc, in
// docs/SYNC-BENCH.md between the results markers.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startJitterProxy } from '../common/jitter-proxy.mjs';
import { dist, mean, median, percentile, presentationSpread, skewOverGrid } from './skew.mjs';
import { children, firstLine, freePort, getJson, sleep, startProcess, stopChild, waitFor } from '../common/util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// As bench/latency, plus: no background throttling of the pages that are not in front (every
// viewer is a page of its own; none must be treated as a hidden tab).
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required',
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];
const DOC = path.join(ROOT, 'docs', 'SYNC-BENCH.md');
const CHANNEL = 'sync';
const GRID_MS = 100;

// ---------------------------------------------------------------------------------------------
// Options

function range(s, what) {
  const m = /^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?$/.exec(s);
  if (!m) throw new Error(`${what} is MIN-MAX in ms, e.g. 50-150`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (b < a) throw new Error(`${what}: MAX < MIN`);
  return [a, b];
}

function parseOptions(argv) {
  const o = { viewers: 4, proxied: 1, seconds: 30, warmup: 10, modes: ['mse'], delayMs: 0, jitter: [50, 150],
    upJitter: [0, 0], bitrate: '2M', maxLoad: 0, doc: true, relay: null, settle: 60, trace: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--viewers') o.viewers = Number(v());
    else if (a === '--proxied') o.proxied = Number(v());
    else if (a === '--seconds') o.seconds = Number(v());
    else if (a === '--warmup') o.warmup = Number(v());
    else if (a === '--mode') {
      const m = v();
      if (!['mse', 'webcodecs', 'both'].includes(m)) throw new Error('--mode is mse, webcodecs or both');
      o.modes = m === 'both' ? ['mse', 'webcodecs'] : [m];
    } else if (a === '--delay-ms') o.delayMs = Number(v());
    else if (a === '--jitter') o.jitter = range(v(), '--jitter');
    else if (a === '--up-jitter') o.upJitter = range(v(), '--up-jitter');
    else if (a === '--bitrate') o.bitrate = v();
    else if (a === '--max-load') o.maxLoad = Number(v());
    else if (a === '--relay') o.relay = path.resolve(v());
    else if (a === '--settle') o.settle = Number(v());
    else if (a === '--no-doc') o.doc = false;
    else if (a === '--trace') o.trace = path.resolve(v());
    else if (a === '-h' || a === '--help') {
      console.log(`node bench/sync/run.mjs [--viewers 4] [--proxied 1] [--seconds 30] [--warmup 10]
                        [--mode mse|webcodecs|both] [--delay-ms N] [--jitter 50-150] [--up-jitter 0-0]
                        [--bitrate 2M] [--settle 60] [--max-load L] [--relay PATH] [--no-doc]
                        [--trace FILE]
  --viewers N      viewer pages (at least 2; the brief's setup is 4)
  --proxied K      how many of them go through the jitter proxy (default 1)
  --delay-ms N     fixed shared delay D (relay --delay-ms); 0 (default): the relay chooses it
  --jitter A-B     proxy delay relay→viewer per chunk, ms (default 50-150; in order)
  --up-jitter A-B  proxy delay viewer→relay, ms (default none)
  --settle S       automatic D: after the warm-up, wait up to S s (default 60) until D held 12 s
  --max-load L     before each mode, wait (3 min at most) for the 1-minute load average < L
  --relay PATH     relay binary (default: target/release, else target/debug)
  --trace FILE     write each mode's window as JSON lines: per viewer its once-a-second player
                   statistics and every presented frame (wall-clock display time, burned
                   time); D once a second`);
      process.exit(0);
    } else throw new Error(`unknown option ${a} (--help)`);
  }
  if (!(Number.isInteger(o.viewers) && o.viewers >= 2 && o.viewers <= 12)) throw new Error('--viewers must be 2..12');
  if (!(Number.isInteger(o.proxied) && o.proxied >= 0 && o.proxied < o.viewers)) throw new Error('--proxied must be 0..viewers-1');
  if (!(o.seconds >= 5 && o.seconds <= 600)) throw new Error('--seconds must be in [5, 600]');
  if (!(o.warmup >= 0 && o.warmup <= 120)) throw new Error('--warmup must be in [0, 120]');
  if (!(o.settle >= 0 && o.settle <= 300)) throw new Error('--settle must be in [0, 300]');
  if (!(Number.isInteger(o.delayMs) && o.delayMs >= 0 && o.delayMs <= 10000)) throw new Error('--delay-ms must be 0..10000');
  return o;
}

// ---------------------------------------------------------------------------------------------
// Processes (bench/common/util.mjs): every child is tracked, stopped in order at the end of a
// mode, and killed on exit as a last resort.

process.on('exit', () => { for (const c of children) try { c.proc.kill('SIGKILL'); } catch { /* gone */ } });
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`# ${sig}: stopping after this mode (again to stop at once)`);
  });
}





/** target/release's `name` when it exists, else target/debug's (as bench/latency), or null. */
function binary(name) {
  return ['release', 'debug'].map((p) => path.join(ROOT, 'target', p, name)).find(existsSync) || null;
}

// ---------------------------------------------------------------------------------------------
// One mode

/** What a viewer page exposes, read in the page. */
function pageStats() {
  const el = document.querySelector('lockstep-player');
  const s = el && el.player && el.player.stats;
  if (!s) return null;
  return {
    t: Date.now(), state: s.state, mode: s.mode, latencyMs: s.latencyMs, targetLatencyMs: s.targetLatencyMs,
    syncErrorMs: s.syncErrorMs, requiredLatencyMs: s.requiredLatencyMs, clockOffsetMs: s.clockOffsetMs,
    rttMs: s.rttMs, clockUpMs: s.clockUpMs, clockDownMs: s.clockDownMs, playbackRate: s.playbackRate, seeks: s.seeks, stalls: s.stalls, fallbacks: s.fallbacks,
    fallbackReason: s.fallbackReason ?? null, wsUrl: el.getAttribute('src'),
    refreshDepth: s.refreshDepth, writeMarginMs: s.writeMarginMs, refreshMisses: s.refreshMisses,
    refreshPeriodMs: s.refreshPeriodMs, clockConnection: s.clockConnection,
  };
}

async function openViewer(browser, url, i, proxied) {
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`.slice(0, 300)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`.slice(0, 300));
  });
  await page.goto(url, { timeout: 30000 });
  await page.waitForFunction(() => !!window.lockstepProbe, null, { timeout: 20000, polling: 100 });
  await page.evaluate(() => {
    const v = document.querySelector('lockstep-player').video;
    window.benchWaiting = [];
    v.addEventListener('waiting', () => window.benchWaiting.push(Date.now()));
  });
  return { i, proxied, url, context, page, problems, stats: [] };
}

async function runMode(mode, opts, browser, bins) {
  const ports = { http: await freePort(), rtmp: await freePort() };
  const base = `http://127.0.0.1:${ports.http}`;
  const viewers = [];
  let proxy = null;
  const load0 = os.loadavg();
  try {
    const relayArgs = ['--http', `127.0.0.1:${ports.http}`, '--rtmp', `127.0.0.1:${ports.rtmp}`, '--www', path.join(ROOT, 'www')];
    if (opts.delayMs > 0) relayArgs.push('--delay-ms', String(opts.delayMs));
    await startProcess('relay', bins.relay, relayArgs, { ready: /lockstep-relay: http:\/\// });
    const total = opts.warmup + opts.settle + opts.seconds + 120 + 30 * opts.viewers;
    const source = await startProcess('test source', bins.source, ['--url', `rtmp://127.0.0.1:${ports.rtmp}/live/${CHANNEL}`,
      '--size', '640x360', '--fps', '30', '--bitrate', opts.bitrate, '--gop-seconds', '1', '--bframes', '0',
      '--duration', String(total)]);
    await waitFor(`channel ${CHANNEL} live`, async () => {
      const { channels } = await getJson(`${base}/api/channels`);
      return channels.some((c) => c.name === CHANNEL && c.live);
    }, 20000).catch((e) => { throw new Error(`${e.message}\n${source.log}`); });
    proxy = await startJitterProxy({ target: ports.http, minMs: opts.jitter[0], maxMs: opts.jitter[1],
      upMinMs: opts.upJitter[0], upMaxMs: opts.upJitter[1] });

    // The viewers: the last `proxied` ones load the page (and so open the WebSocket) through
    // the proxy.
    for (let i = 0; i < opts.viewers; i++) {
      const proxied = i >= opts.viewers - opts.proxied;
      const host = proxied ? `http://127.0.0.1:${proxy.port}` : base;
      viewers.push(await openViewer(browser, `${host}/?channel=${CHANNEL}&probe=1&mode=${mode}`, i, proxied));
    }
    await Promise.all(viewers.map((v) => v.page.waitForFunction(() => window.lockstepProbe.summary().count > 0, null,
      { timeout: 30000, polling: 200 }).catch(async (e) => {
      const s = await v.page.evaluate(() => window.lockstepProbe.summary()).catch(() => null);
      throw new Error(`viewer ${v.i + 1}: no decoded frame within 30 s (${e.message.split('\n')[0]}): ${JSON.stringify(s)} ${v.problems.join('; ')}`);
    })));
    process.stdout.write(`# ${mode}: ${opts.viewers} viewers playing; warm-up ${opts.warmup} s ... `);
    await sleep(opts.warmup * 1000);
    // Automatic D: the relay raises D at once and lowers it after a lower requirement held
    // 10 s (relay/src/channel/delay.rs). Wait (at most --settle s) until D has held 12 s, so
    // that the window measures the steady state rather than the start-up's changes of D.
    let settledMs = 0;
    if (opts.delayMs === 0 && opts.settle > 0) {
      const s0 = Date.now();
      let d = null;
      let since = Date.now();
      while (Date.now() - s0 < opts.settle * 1000 && Date.now() - since < 12000) {
        const ch = await getJson(`${base}/api/channels`).then((j) => j.channels.find((c) => c.name === CHANNEL)).catch(() => null);
        if (ch && ch.delay_ms !== d) { d = ch.delay_ms; since = Date.now(); }
        await sleep(500);
      }
      settledMs = Date.now() - s0;
      process.stdout.write(`D ${d} ms held ${((Date.now() - since) / 1000).toFixed(0)} s (waited ${(settledMs / 1000).toFixed(0)} s) ... `);
    }

    // The window: poll the players' statistics and the relay's D once a second.
    const t0 = Date.now();
    const t1 = t0 + opts.seconds * 1000;
    const delayTrace = [];
    while (Date.now() < t1) {
      const tick = Date.now();
      const [chs] = await Promise.all([
        getJson(`${base}/api/channels`).catch(() => null),
        ...viewers.map(async (v) => { const s = await v.page.evaluate(pageStats).catch(() => null); if (s) v.stats.push(s); }),
      ]);
      const ch = chs && chs.channels.find((c) => c.name === CHANNEL);
      if (ch) delayTrace.push({ t: tick, delayMs: ch.delay_ms });
      await sleep(Math.max(0, Math.min(1000 - (Date.now() - tick), t1 - Date.now())));
    }
    await sleep(500); // frames presented up to t1 are in the rings
    const relayStats = await getJson(`${base}/api/stats?channel=${CHANNEL}`).catch(() => null);
    for (const v of viewers) {
      const r = await v.page.evaluate(([from, to]) => {
        const probe = window.lockstepProbe;
        const summary = probe.summary();
        const samples = probe.samples().filter((s) => s.displayMs >= from && s.displayMs <= to)
          .map((s) => ({ displayMs: s.displayMs, burnedMs: s.burnedMs, latencyMs: s.latencyMs }));
        const q = document.querySelector('lockstep-player').video.getVideoPlaybackQuality();
        return { summary, samples, waiting: window.benchWaiting.filter((t) => t >= from && t <= to).length,
          dropped: q.droppedVideoFrames, total: q.totalVideoFrames };
      }, [t0 - 3000, t1 + 500]);
      Object.assign(v, r);
    }
    const load1 = os.loadavg();
    if (opts.trace) writeTrace(opts.trace, mode, viewers, { t0, t1, delayTrace });
    const delays = delayTrace.map((d) => d.delayMs);
    return analyse(mode, opts, viewers, { t0, t1, delays, relayStats, load: [load0[0], load1[0]], proxyStats: proxy.stats() });
  } finally {
    for (const v of viewers) await v.context.close().catch(() => {});
    await proxy?.close().catch(() => {});
    for (const name of ['test source', 'relay']) {
      for (const c of [...children]) if (c.name === name) await stopChild(c, name === 'test source' ? 'SIGINT' : 'SIGTERM');
    }
  }
}

/** Appends one mode's window to `file` as a JSON line (--trace). */
function writeTrace(file, mode, viewers, { t0, t1, delayTrace }) {
  const line = {
    mode, t0, t1, delay: delayTrace,
    viewers: viewers.map((v) => ({
      viewer: v.i + 1, proxied: v.proxied, stats: v.stats,
      frames: v.samples.map((s) => [+(s.displayMs + v.summary.clockSkewMs).toFixed(2), s.burnedMs]),
    })),
  };
  appendFileSync(file, `${JSON.stringify(line)}\n`);
}

function analyse(mode, opts, viewers, ctx) {
  const { t0, t1 } = ctx;
  // Every page's display times on the wall clock (the source's clock): each page's
  // timeOrigin-based clock corrected by its measured gap to Date.now() (clockSkewMs, ≈ 0).
  const onWall = viewers.map((v) => ({
    samples: v.samples.map((s) => ({ displayMs: s.displayMs + v.summary.clockSkewMs, burnedMs: s.burnedMs })),
  }));
  const all = skewOverGrid(onWall, t0, t1, GRID_MS);
  const directIdx = viewers.filter((v) => !v.proxied).map((v) => v.i);
  const direct = skewOverGrid(directIdx.map((i) => onWall[i]), t0, t1, GRID_MS);
  const pres = presentationSpread(onWall, t0, t1);
  const presDirect = presentationSpread(directIdx.map((i) => onWall[i]), t0, t1);
  const frameMs = 1000 / 30;
  const rows = viewers.map((v, k) => {
    const inWin = v.samples.filter((s) => s.displayMs >= t0 && s.displayMs <= t1);
    const st = v.stats;
    const num = (key) => st.map((x) => x[key]).filter((x) => typeof x === 'number');
    const clock = mean(num('clockOffsetMs'));
    const sync = mean(num('syncErrorMs'));
    return {
      viewer: v.i + 1,
      path: v.proxied ? `proxy ${opts.jitter[0]}–${opts.jitter[1]} ms${opts.upJitter[1] > 0 ? ` (up ${opts.upJitter[0]}–${opts.upJitter[1]})` : ''}` : 'direct',
      modes: [...new Set(st.map((x) => x.mode))].join('/') || '?',
      states: [...new Set(st.map((x) => x.state))].join('/') || '?',
      g2gP50: percentile(inWin.map((s) => s.latencyMs), 50),
      offsetMean: mean(all.offsets[k]),
      offsetAbsP95: percentile(all.offsets[k].map(Math.abs), 95),
      clockOffsetMs: clock,
      clockOffsetRange: num('clockOffsetMs').length ? [Math.min(...num('clockOffsetMs')), Math.max(...num('clockOffsetMs'))] : null,
      rttMs: mean(num('rttMs')),
      clockUpMs: mean(num('clockUpMs')),
      clockDownMs: mean(num('clockDownMs')),
      // Share of samples with pings on the clock connection (/clock) rather than the media one.
      clockConnection: st.length ? st.filter((x) => x.clockConnection).length / st.length : null,
      syncErrorMs: sync,
      syncErrorAbsMean: mean(num('syncErrorMs').map(Math.abs)),
      predicted: clock !== null && sync !== null ? clock - sync : null, // ahead of the schedule by e − s
      targetMs: mean(num('targetLatencyMs')),
      requiredMs: mean(num('requiredLatencyMs')),
      rate: mean(num('playbackRate')),
      seeks: st.length > 1 ? st[st.length - 1].seeks - st[0].seeks : null,
      stalls: v.waiting,
      fps: inWin.length / ((t1 - t0) / 1000),
      decoded: v.summary.presentedFrames ? v.summary.count / v.summary.presentedFrames : null,
      // Frames whose display time is Chromium's estimate (see www/probe.js: noEstimate).
      // WebCodecs refresh planning (player-wasm/src/control/refresh.rs) at the end.
      refresh: st.length && typeof st[st.length - 1].refreshDepth === 'number'
        ? `${st[st.length - 1].refreshDepth} / ${st[st.length - 1].writeMarginMs.toFixed(1)} / ${st[st.length - 1].refreshMisses} / ${st[st.length - 1].refreshPeriodMs?.toFixed(1) ?? '–'}`
        : '–',
      estimated: v.summary.framesSeen ? 1 - (v.summary.noEstimate ?? 0) / v.summary.framesSeen : null,
      pageClockSkewMs: v.summary.clockSkewMs,
      fallbacks: st.length ? st[st.length - 1].fallbacks : null,
      fallbackReason: st.length ? st[st.length - 1].fallbackReason : null,
      wsUrl: st.length ? st[0].wsUrl : null,
      problems: v.problems.slice(0, 3),
    };
  });
  // The predicted offsets relative to their median, to set beside the measured ones.
  const pm = median(rows.map((r) => r.predicted).filter((x) => x !== null));
  for (const r of rows) r.predictedRel = r.predicted !== null && pm !== null ? r.predicted - pm : null;
  const viewerList = ctx.relayStats?.channels?.[0]?.viewer_list?.viewers ?? [];
  const summary = ctx.relayStats?.channels?.[0]?.summary ?? null;
  return {
    mode, opts, t0, t1, frameMs, instants: all.instants, skew: dist(all.skews), skewDirect: dist(direct.skews),
    presentation: { ...dist(pres.spreads), frames: pres.frames },
    presentationDirect: dist(presDirect.spreads),
    framesApart: dist(all.skews.map((x) => Math.round(x / frameMs))),
    delay: { min: ctx.delays.length ? Math.min(...ctx.delays) : null, max: ctx.delays.length ? Math.max(...ctx.delays) : null, last: ctx.delays.at(-1) ?? null,
      changes: ctx.delays.filter((d, k) => k > 0 && d !== ctx.delays[k - 1]).length },
    rows, load: ctx.load, relayViewers: viewerList, relaySummary: summary, proxyStats: ctx.proxyStats,
  };
}

// ---------------------------------------------------------------------------------------------
// Report

const f0 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : String(Math.round(x)));
const f1 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(1));
const sgn = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : `${x > 0 ? '+' : ''}${x.toFixed(1)}`);

function report(results) {
  const lines = [];
  lines.push('| Mode | viewers (proxied) | D ms (relay) | skew p50 ms | skew p95 ms | skew max ms | skew mean ms | direct viewers only: p95 / mean ms | instants | same frame presented: spread p95 / mean ms (frames); direct only | load (1 min) |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    if (r.error) { lines.push(`| ${r.mode} | failed: ${r.error.replace(/\|/g, '/').slice(0, 300)} | | | | | | | | | |`); continue; }
    const d = r.delay.min === r.delay.max ? f0(r.delay.min) : `${f0(r.delay.min)}–${f0(r.delay.max)}, ${r.delay.changes} change${r.delay.changes === 1 ? '' : 's'}`;
    lines.push(`| ${r.mode} | ${r.opts.viewers} (${r.opts.proxied}) | ${d}${r.opts.delayMs ? ' (fixed)' : ' (auto)'} | ${f1(r.skew.p50)} | ${f1(r.skew.p95)} | ${f1(r.skew.max)} | ${f1(r.skew.mean)} | ${f1(r.skewDirect.p95)} / ${f1(r.skewDirect.mean)} | ${r.instants} | ${f1(r.presentation.p95)} / ${f1(r.presentation.mean)} (${r.presentation.frames}); ${f1(r.presentationDirect.p95)} / ${f1(r.presentationDirect.mean)} | ${r.load.map((x) => x.toFixed(1)).join('→')} |`);
  }
  lines.push('');
  lines.push('| Mode | viewer | path | player mode | g2g p50 ms | offset vs median: mean ms | \\|offset\\| p95 ms | clockOffsetMs (= error) mean [min, max] | least up / down delay ms (on /clock) | rttMs | syncErrorMs mean | predicted e − s, rel. ms | target ms | required ms | rate | seeks | stalls | fps | decoded | display time estimated | refresh depth / write margin ms / misses / period ms |');
  lines.push('|---|---:|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of results) {
    if (r.error) continue;
    for (const v of r.rows) {
      const cr = v.clockOffsetRange ? ` [${sgn(v.clockOffsetRange[0])}, ${sgn(v.clockOffsetRange[1])}]` : '';
      lines.push(`| ${r.mode} | ${v.viewer} | ${v.path} | ${v.modes}${v.fallbacks ? ` (${v.fallbacks} fallback: ${v.fallbackReason})` : ''} | ${f0(v.g2gP50)} | ${sgn(v.offsetMean)} | ${f1(v.offsetAbsP95)} | ${sgn(v.clockOffsetMs)}${cr} | ${f1(v.clockUpMs)} / ${f1(v.clockDownMs)}${v.clockConnection === null ? '' : ` (${(100 * v.clockConnection).toFixed(0)} %)`} | ${f1(v.rttMs)} | ${sgn(v.syncErrorMs)} | ${sgn(v.predictedRel)} | ${f0(v.targetMs)} | ${f0(v.requiredMs)} | ${v.rate?.toFixed(3) ?? '–'} | ${v.seeks ?? '–'} | ${v.stalls} | ${f1(v.fps)} | ${v.decoded === null ? '–' : `${(100 * v.decoded).toFixed(0)} %`} | ${v.estimated === null ? '–' : `${(100 * v.estimated).toFixed(0)} %`} | ${v.refresh} |`);
    }
  }
  return lines.join('\n');
}

function targetsLine(results) {
  const out = [];
  for (const r of results) {
    if (r.error) continue;
    // One frame apart reads 33 or 34 ms (burned times are whole ms, frames 33.3 ms apart, plus
    // the source's sub-ms hand-over jitter); two frames apart read 66–67 ms.
    if (r.mode === 'mse') out.push(`MSE: p95 skew ${f1(r.skew.p95)} ms against ≤ one frame (33.3 ms; a one-frame skew reads 33–34 ms): ${r.skew.p95 < 1.5 * (1000 / 30) ? 'met' : 'missed'}.`);
    if (r.mode === 'webcodecs') {
      const real = r.rows.every((v) => v.modes === 'webcodecs');
      const p = r.presentation;
      out.push(`WebCodecs: the same frame is presented within ${f1(p.p95)} ms at p95 (≤ 17) and ${f1(p.mean)} ms on average (≤ 5): ${p.p95 !== null && p.p95 <= 17 && p.mean <= 5 ? 'met' : 'missed'}; instant skew p95 ${f1(r.skew.p95)}, mean ${f1(r.skew.mean)} ms${real ? '' : ' (not every page ran WebCodecs: see "player mode")'}.`);
    }
  }
  return out.join(' ');
}

const START = '<!-- results:start (written by bench/sync/run.mjs) -->';
const END = '<!-- results:end -->';

function writeDoc(out) {
  let doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : `# Sync benchmark\n\n${START}\n${END}\n`;
  if (doc.indexOf(START) < 0 || doc.indexOf(END) < doc.indexOf(START)) doc += `\n${START}\n${END}\n`;
  const i = doc.indexOf(START);
  const j = doc.indexOf(END);
  doc = `${doc.slice(0, i + START.length)}\n${out}\n${doc.slice(j)}`;
  writeFileSync(DOC, doc);
  console.log(`# wrote ${path.relative(ROOT, DOC)}`);
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  const command = `node bench/sync/run.mjs ${process.argv.slice(2).join(' ')}`.trim();
  const started = new Date();
  const loadStart = os.loadavg();
  const bins = { relay: opts.relay || binary('lockstep-relay'), source: binary('lockstep-test-source') };
  if (!bins.relay || !existsSync(bins.relay)) throw new Error('no lockstep-relay: cargo build --release -p lockstep-relay');
  if (!bins.source) throw new Error('no lockstep-test-source: cargo build --release -p lockstep-demo');
  if (!existsSync(path.join(ROOT, 'www', 'player', 'lockstep-player.js'))) throw new Error('the player is not built: bash player-wasm/build.sh');
  const { chromium } = await import(path.join(ROOT, 'node_modules', 'playwright-core', 'index.mjs'));

  let browser;
  const results = [];
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
    for (const mode of opts.modes) {
      if (interrupted) break;
      if (opts.maxLoad > 0) {
        const until = Date.now() + 180000;
        while (os.loadavg()[0] >= opts.maxLoad && Date.now() < until) await sleep(5000);
      }
      try {
        const r = await runMode(mode, opts, browser, bins);
        results.push(r);
        console.log(`skew p50 ${f1(r.skew.p50)} p95 ${f1(r.skew.p95)} max ${f1(r.skew.max)} mean ${f1(r.skew.mean)} ms, D ${r.delay.min}–${r.delay.max} ms`);
      } catch (e) {
        results.push({ mode, opts, error: e.message.split('\n')[0] });
        console.log(`\n# ${mode} failed: ${e.stack || e.message}`);
      }
    }
    const browserVersion = browser.version();
    const machine = `${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}`;
    const out = [
      `Run ${started.toISOString().replace(/\.\d+Z$/, 'Z')}: \`${command}\``,
      '',
      `Machine: ${machine}; load average (1/5/15 min) ${loadStart.map((x) => x.toFixed(2)).join(' / ')} at the start, ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')} at the end (other developers' work on the machine included; 2 cores: above ~2 the figures include CPU starvation).`,
      `- Chromium ${browserVersion} headless (${CHROMIUM}, --disable-gpu), one browser, one context per viewer; node ${process.version}; ${firstLine('ffmpeg', ['-version'])}.`,
      `- Relay \`${path.relative(ROOT, bins.relay)}\`${opts.delayMs ? ` --delay-ms ${opts.delayMs}` : ' (automatic D)'}; source \`${path.relative(ROOT, bins.source)}\` 640x360 30 fps ${opts.bitrate} CBR, 1 s GOP, no B-frames, x264 ultrafast/zerolatency, Opus audio (10 ms frames; the source's default).`,
      `- ${opts.viewers} viewers, ${opts.proxied} through the jitter proxy (bench/common/jitter-proxy.mjs: relay→viewer chunks delayed ${opts.jitter[0]}–${opts.jitter[1]} ms uniformly, in order${opts.upJitter[1] > 0 ? `; viewer→relay ${opts.upJitter[0]}–${opts.upJitter[1]} ms` : '; viewer→relay not delayed'}); warm-up ${opts.warmup} s after every viewer showed a frame, then ${opts.seconds} s measured; skew sampled every ${GRID_MS} ms.`,
      '',
      report(results),
      '',
      targetsLine(results),
    ].join('\n');
    console.log(`\n${out}\n`);
    for (const r of results) {
      if (r.error) continue;
      const probs = r.rows.filter((v) => v.problems.length).map((v) => `viewer ${v.viewer}: ${v.problems.join('; ')}`);
      if (probs.length) console.log(`# ${r.mode} page problems: ${probs.join(' | ')}`);
      console.log(`# ${r.mode}: ws URLs ${r.rows.map((v) => v.wsUrl).join(', ')}; page clock gaps ${r.rows.map((v) => f1(v.pageClockSkewMs)).join(', ')} ms; proxy ${JSON.stringify(r.proxyStats)}`);
      console.log(`# ${r.mode}: relay viewers ${JSON.stringify(r.relayViewers.map((x) => ({ id: x.id, mode: x.mode, latency_ms: x.latency_ms, sync_error_ms: x.sync_error_ms, rtt_ms: x.rtt_ms })))}`);
    }
    if (opts.doc && results.some((r) => !r.error)) writeDoc(out);
    if (results.some((r) => r.error)) process.exitCode = 1;
  } finally {
    await browser?.close().catch(() => {});
    for (const c of [...children]) await stopChild(c);
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exitCode = 1;
});
