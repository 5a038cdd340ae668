// Shared harness for the browser tests: free ports, the real relay binary, ffmpeg-made test
// streams and publishers, one headless Chromium, and a page helper that creates a
// LockstepPlayer on the relay's page. Every process started here is tracked and killed by
// `cleanup()` (call it from `after`), and on process exit as a last resort.
//
// Needs: `cargo build -p lockstep-relay` (target/debug/lockstep-relay) and
// `bash player-wasm/build.sh` (www/player/lockstep-player.js), ffmpeg, /usr/bin/chromium.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const RELAY_BIN = path.join(ROOT, 'target', 'debug', 'lockstep-relay');
export const WWW = path.join(ROOT, 'www');
export const PLAYER_JS = path.join(WWW, 'player', 'lockstep-player.js');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const children = new Set();
const tempDirs = new Set();

/** Fails with a clear message when the relay or the player package has not been built. */
export function requireBuilt() {
  if (!existsSync(RELAY_BIN)) {
    throw new Error(`${RELAY_BIN} is missing: run \`cargo build -p lockstep-relay\` before the browser tests`);
  }
  if (!existsSync(PLAYER_JS)) {
    throw new Error(`${PLAYER_JS} is missing: run \`bash player-wasm/build.sh\` before the browser tests`);
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (Debian's chromium package)`);
  const ff = spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' });
  if (ff.error || ff.status !== 0) throw new Error('ffmpeg is missing: the tests make their streams with it');
}

/** A free TCP port on 127.0.0.1 (bound to port 0, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves `promise`, or rejects after `ms` with `what` in the message. */
export async function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(t);
  }
}

function track(child, name) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.on('error', (e) => console.error(`${name}: ${e.message}`));
  return child;
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. Resolves once it has exited. */
export async function stopProcess(child, { signal = 'SIGTERM', graceMs = 2000 } = {}) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!done) {
    child.kill('SIGKILL');
    await withTimeout(exited, 5000, `process ${child.pid} to exit after SIGKILL`);
  }
}

/** A temporary directory, removed by cleanup(). */
export function tempDir(prefix = 'lockstep-browser-') {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function run(cmd, args, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] }), what);
    let err = '';
    child.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, sig) => {
      clearTimeout(t);
      if (code === 0) resolve();
      else reject(new Error(`${what} failed (${code ?? sig}):\n${err}`));
    });
  });
}

/**
 * Makes test FLVs with ffmpeg in `dir`: `av` (testsrc2 640x360 30 fps H.264 + 440 Hz AAC),
 * `video` (video only), `audio` (audio only); `kinds` chooses which. Resolves to their paths.
 */
export async function makeFlvs(dir, kinds = ['av', 'video', 'audio'], seconds = 6) {
  const v = ['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30'];
  const a = ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'];
  const venc = ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p'];
  const aenc = ['-c:a', 'aac', '-b:a', '96k'];
  const spec = {
    av: [...v, ...a, '-t', String(seconds), ...venc, ...aenc],
    video: [...v, '-t', String(seconds), ...venc, '-an'],
    audio: [...a, '-t', String(seconds), ...aenc, '-vn'],
  };
  const out = {};
  // One at a time: the machine may have two cores, and the browser tests are timing-sensitive.
  for (const k of kinds) {
    out[k] = path.join(dir, `${k}.flv`);
    await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...spec[k], '-f', 'flv', out[k]],
      60000, `ffmpeg making ${k}.flv`);
  }
  return out;
}

/**
 * Starts the real relay: `--http 127.0.0.1:httpPort --rtmp 127.0.0.1:rtmpPort --www www`
 * plus `args` (e.g. ['--file', 'live=/tmp/x.flv', '--loop']). Resolves once it printed
 * `lockstep-relay: http://`. Ports default to fresh free ones; pass the old ones to restart.
 */
export async function startRelay({ httpPort, rtmpPort, args = [], env = {} } = {}) {
  // A free port can be taken by another process between freePort() and the relay's bind:
  // fresh ports are picked again then (at most three tries).
  const fresh = httpPort === undefined && rtmpPort === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRelayOn({ httpPort: httpPort ?? await freePort(), rtmpPort: rtmpPort ?? await freePort(), args, env });
    } catch (e) {
      if (!fresh || attempt >= 3 || !/Address already in use/.test(e.message)) throw e;
    }
  }
}

async function startRelayOn({ httpPort, rtmpPort, args, env }) {
  const argv = ['--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`, '--www', WWW, ...args];
  const env2 = { ...process.env, ...env };
  delete env2.LOCKSTEP_ADMIN_TOKEN;
  delete env2.LOCKSTEP_PUBLISH_KEY;
  const proc = track(spawn(RELAY_BIN, argv, { cwd: ROOT, env: env2, stdio: ['ignore', 'pipe', 'pipe'] }), 'relay');
  let log = '';
  const append = (d) => { log = (log + d).slice(-20000); };
  proc.stderr.on('data', append);
  const ready = new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      append(d);
      if (log.includes('lockstep-relay: http://')) resolve();
    });
    proc.once('exit', (code, sig) => reject(new Error(`relay exited (${code ?? sig}) before it was ready:\n${log}`)));
  });
  try {
    await withTimeout(ready, 15000, `relay ready on 127.0.0.1:${httpPort}`);
  } catch (e) {
    await stopProcess(proc, { signal: 'SIGKILL' });
    throw e;
  }
  const relay = {
    proc,
    httpPort,
    rtmpPort,
    base: `http://127.0.0.1:${httpPort}`,
    ws: (name) => `ws://127.0.0.1:${httpPort}/ws/${name}`,
    rtmp: (name) => `rtmp://127.0.0.1:${rtmpPort}/live/${name}`,
    get log() { return log; },
    stop: (opts) => stopProcess(proc, opts),
    /** GET a JSON API path on the relay. */
    async json(p) {
      const res = await withTimeout(fetch(`http://127.0.0.1:${httpPort}${p}`), 5000, `GET ${p}`);
      if (!res.ok) throw new Error(`GET ${p}: HTTP ${res.status}`);
      return res.json();
    },
  };
  return relay;
}

/** Waits until the relay reports channel `name` live (a publisher or file is running). */
export async function waitLive(relay, name, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { channels } = await relay.json('/api/channels');
    if (channels.some((c) => c.name === name && c.live)) return;
    if (Date.now() > deadline) throw new Error(`channel ${name} not live after ${timeoutMs} ms: ${JSON.stringify(channels)}`);
    await sleep(100);
  }
}

/** Publishes `file` in a loop, in real time, over RTMP (or any ffmpeg output URL). */
export function startPublisher(file, url) {
  const proc = track(spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-stream_loop', '-1',
    '-i', file, '-c', 'copy', '-f', 'flv', url], { stdio: ['ignore', 'ignore', 'pipe'] }), 'publisher');
  let log = '';
  proc.stderr.on('data', (d) => { log = (log + d).slice(-4000); });
  return { proc, get log() { return log; }, stop: (opts) => stopProcess(proc, opts) };
}

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required'];

/** The shared headless Chromium (Debian's; never a downloaded one). */
export async function launchBrowser() {
  return withTimeout(chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 }),
    35000, 'chromium launch');
}

/**
 * Instrumentation installed in the page before the player exists: live setInterval and
 * setTimeout ids (with whether the player's code created them), and WebSocket constructions
 * (`count()` tells media and clock-sync connections apart).
 */
export function instrumentPage() {
  const w = window;
  if (w.__probe) return;
  const fromPlayer = () => /\/player\/|wasm/.test(new Error().stack || '');
  const probe = { intervals: new Map(), timeouts: new Map(), sockets: [] };
  const { setInterval: si, setTimeout: st, clearInterval: ci, clearTimeout: ct } = w;
  w.setInterval = function (fn, ms, ...rest) {
    const id = si.call(w, fn, ms, ...rest);
    probe.intervals.set(id, fromPlayer());
    return id;
  };
  w.clearInterval = function (id) { probe.intervals.delete(id); return ci.call(w, id); };
  w.setTimeout = function (fn, ms, ...rest) {
    let id;
    const wrapped = typeof fn === 'function' ? function (...a) { probe.timeouts.delete(id); return fn.apply(this, a); } : fn;
    id = st.call(w, wrapped, ms, ...rest);
    probe.timeouts.set(id, fromPlayer());
    return id;
  };
  w.clearTimeout = function (id) { probe.timeouts.delete(id); return ct.call(w, id); };
  const Orig = w.WebSocket;
  w.WebSocket = class extends Orig {
    constructor(...a) {
      super(...a);
      probe.sockets.push({ url: String(a[0]), at: performance.now(), ws: this });
    }
  };
  probe.count = () => ({
    intervals: probe.intervals.size,
    playerIntervals: [...probe.intervals.values()].filter(Boolean).length,
    timeouts: probe.timeouts.size,
    playerTimeouts: [...probe.timeouts.values()].filter(Boolean).length,
    // Media connections (…/ws/NAME) and clock-sync connections (…/clock) apart.
    sockets: probe.sockets.filter((x) => !/\/clock$/.test(x.url)).length,
    clockSockets: probe.sockets.filter((x) => /\/clock$/.test(x.url)).length,
  });
  w.__probe = probe;
}

/**
 * Opens the relay's page and creates a LockstepPlayer on a new <video muted> (window.p,
 * window.v), collecting every player event into window.events as [type, detail, time].
 * `options` goes to the player (default: channel `live` on this relay).
 */
export async function openPlayer(browser, relayBase, options = { channel: 'live' }, { instrument = false } = {}) {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console.error: ${m.text()}`); });
  page.setDefaultTimeout(15000);
  await page.goto(`${relayBase}/`, { timeout: 15000 });
  if (instrument) await page.evaluate(instrumentPage);
  await page.evaluate(async (opts) => {
    const { LockstepPlayer } = await import('/player/lockstep-player.js');
    window.events = [];
    // Timers and sockets just before the player exists (with `instrument`).
    if (window.__probe) window.__before = window.__probe.count();
    const v = document.createElement('video');
    v.muted = true;
    v.width = 640;
    v.height = 360;
    document.body.appendChild(v);
    window.v = v;
    window.p = new LockstepPlayer(v, opts);
    for (const t of ['state', 'stats', 'error', 'ended', 'skipped', 'discontinuity']) {
      window.p.addEventListener(t, (e) => window.events.push([t, e.detail, performance.now()]));
    }
    await window.p.ready;
  }, options);
  page.problems = problems;
  return page;
}

/** Polls `fn(arg)` in the page until it returns a truthy value; returns that value. */
export async function waitInPage(page, fn, arg, timeoutMs, what) {
  const handle = await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 100 })
    .catch(async (e) => {
      const evs = await page.evaluate(() => (window.events || []).filter((e) => e[0] !== 'stats').map((e) => e.slice(0, 2))).catch(() => []);
      throw new Error(`${what}: not within ${timeoutMs} ms (${e.message.split('\n')[0]}); player events: ${JSON.stringify(evs)}`);
    });
  return handle.jsonValue();
}

/** Player events but stats, as [type, detail]. */
export function playerEvents(page) {
  return page.evaluate(() => window.events.filter((e) => e[0] !== 'stats').map((e) => [e[0], e[1]]));
}

/** Waits for state 'playing' (the state property), `timeoutMs` at most. */
export function waitPlaying(page, timeoutMs = 10000, expr = 'window.p') {
  return waitInPage(page, (x) => eval(x).state === 'playing', expr, timeoutMs, 'state playing');
}

/** currentTime of the video (`sel` evaluates to it in the page) now and `ms` later. */
export async function currentTimeAdvance(page, ms, sel = 'window.v') {
  const t0 = await page.evaluate((s) => eval(s).currentTime, sel);
  await sleep(ms);
  const t1 = await page.evaluate((s) => eval(s).currentTime, sel);
  return { t0, t1, advanced: t1 - t0 };
}

/** Kills every process this harness started and removes its temporary directories. */
export async function cleanup() {
  await Promise.all([...children].map((c) => stopProcess(c, { graceMs: 1500 }).catch(() => {})));
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
  for (const d of tempDirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* gone */ }
  }
});
