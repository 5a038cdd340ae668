// End to end: the real test source (barcode burned into every frame, docs/BARCODE.md)
// publishes over RTMP to the real relay; the real player plays it on the channel page with the
// glass-to-glass probe (`/?channel=NAME&probe=1`, www/probe.js). Speed is for the benchmark
// (bench/latency/run.mjs); here latency only has to be plausible.
//
// Needs target/debug/lockstep-relay, www/player/ (bash player-wasm/build.sh), ffmpeg,
// /usr/bin/chromium, and the test source: target/debug/lockstep-test-source or
// target/release/lockstep-test-source (`cargo build -p lockstep-demo`; tests/run.sh builds it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  ROOT, cleanup, launchBrowser, requireBuilt, sleep, startRelay, stopProcess, waitInPage, waitLive,
} from './harness.js';

const KEY = 'e2e-key';
const SOURCE_BINS = ['debug', 'release'].map((p) => path.join(ROOT, 'target', p, 'lockstep-test-source'));
const sources = new Set();

/** Starts a barcode source publishing to `url`; returns { stop, log }. */
function startSource(url, { size = '640x360', fps = 30, seconds = 120, audio = null } = {}) {
  const bin = SOURCE_BINS.find((p) => existsSync(p));
  if (!bin) throw new Error('lockstep-test-source is not built: cargo build -p lockstep-demo');
  const args = ['--url', url, '--size', size, '--fps', String(fps), '--bitrate', '1M', '--gop-seconds', '1',
    '--bframes', '0', '--duration', String(seconds), ...(audio ? ['--audio-codec', audio] : [])];
  const proc = spawn(bin, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log = (log + d).slice(-4000); });
  proc.on('error', (e) => { log += `\nspawn: ${e.message}`; });
  const src = { proc, get log() { return log; }, stop: () => stopProcess(proc, { signal: 'SIGINT', graceMs: 3000 }) };
  sources.add(src);
  return src;
}

/** Opens the channel page with the probe; resolves to the page once the probe exists. */
async function openProbePage(browser, base, channel) {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(15000);
  const loadStart = Date.now();
  await page.goto(`${base}/?channel=${channel}&probe=1`, { timeout: 15000 });
  await waitInPage(page, () => !!window.lockstepProbe, null, 10000, 'probe started');
  page.problems = problems;
  page.loadStart = loadStart;
  return page;
}

const summary = (page) => page.evaluate(() => window.lockstepProbe.summary());

/** Median step between consecutive burned times, in ms (the source's frame interval). */
const burnedStep = (page) => page.evaluate(() => {
  const s = window.lockstepProbe.samples();
  const d = [];
  for (let i = 1; i < s.length; i++) d.push(s[i].burnedMs - s[i - 1].burnedMs);
  d.sort((a, b) => a - b);
  return d.length ? d[Math.floor(d.length / 2)] : null;
});

describe('end to end: test source → relay → player, glass-to-glass', { timeout: 100000 }, () => {
  let relay;
  let browser;
  let srcA;

  before(async () => {
    requireBuilt();
    relay = await startRelay({ args: ['--publish-key', KEY] });
    srcA = startSource(`${relay.rtmp('a')}?key=${KEY}`);
    browser = await launchBrowser();
    await waitLive(relay, 'a', 20000).catch((e) => { throw new Error(`${e.message}\nsource log:\n${srcA.log}`); });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await Promise.all([...sources].map((s) => s.stop().catch(() => {})));
    await cleanup();
  });

  test('plays, frames advance, barcodes decode, latency is recorded and plausible', async () => {
    const page = await openProbePage(browser, relay.base, 'a');
    try {
      await waitInPage(page, () => window.lockstepProbe.summary().count >= 10, null, 15000, 'first decoded barcodes');
      const t0 = await page.evaluate(() => {
        window.lockstepProbe.reset();
        return document.querySelector('lockstep-player').video.currentTime;
      });
      await sleep(5000);
      const s = await summary(page);
      const t1 = await page.evaluate(() => document.querySelector('lockstep-player').video.currentTime);
      const shown = await page.evaluate(() => document.getElementById('f-g2g').textContent);
      const detail = JSON.stringify(s);
      console.log(`glass-to-glass over 5 s: p50 ${Math.round(s.p50)} ms, p95 ${Math.round(s.p95)} ms, ${s.count}/${s.presentedFrames} frames decoded`);

      assert.ok(t1 - t0 > 3.5, `currentTime advanced ${(t1 - t0).toFixed(2)} s in 5 s`);
      assert.ok(s.presentedFrames >= 100, `${s.presentedFrames} frames presented in 5 s (30 fps source): ${detail}`);
      assert.ok(s.count >= 0.9 * s.presentedFrames,
        `${s.count} barcodes decoded of ${s.presentedFrames} presented frames (< 90 %): ${detail}`);
      assert.ok(s.min > 0, `a frame displayed before it was made? min latency ${s.min} ms: ${detail}`);
      assert.ok(s.p50 < 5000, `p50 ${s.p50} ms`);
      assert.ok(Math.abs(s.clockSkewMs) < 50, `page clock skew ${s.clockSkewMs} ms`);
      // Burned times advance at the source's frame rate and the sample fields are consistent.
      const step = await burnedStep(page);
      assert.ok(step >= 25 && step <= 45, `median burned-time step ${step} ms (30 fps: ~33)`);
      const samples = await page.evaluate(() => window.lockstepProbe.samples().slice(-5));
      for (const x of samples) {
        assert.ok(Math.abs(x.displayMs - x.burnedMs - x.latencyMs) < 1e-6);
        assert.ok(Math.abs(x.burnedMs - Date.now()) < 60000, `burned time ${x.burnedMs} far from now`);
        assert.equal(typeof x.mediaTime, 'number');
        assert.equal(typeof x.presentedFrames, 'number');
      }
      // The figures panel shows p50 / p95 / last.
      assert.match(shown, /^\d+ ms \/ \d+ ms \/ \d+ ms$/, `figures panel: ${shown}`);
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  });

  test('two channels at once play, each with its own barcodes', async () => {
    // Channel b differs in size and frame rate, so each page can tell whose barcodes it reads.
    const srcB = startSource(`${relay.rtmp('b')}?key=${KEY}`, { size: '480x270', fps: 20, seconds: 60 });
    await waitLive(relay, 'b', 20000).catch((e) => { throw new Error(`${e.message}\nsource log:\n${srcB.log}`); });
    const [pa, pb] = await Promise.all([openProbePage(browser, relay.base, 'a'), openProbePage(browser, relay.base, 'b')]);
    try {
      await Promise.all([pa, pb].map((p) => waitInPage(p, () => window.lockstepProbe.summary().count >= 10,
        null, 15000, 'first decoded barcodes')));
      await Promise.all([pa, pb].map((p) => p.evaluate(() => window.lockstepProbe.reset())));
      await sleep(4000);
      const [sa, sb] = await Promise.all([summary(pa), summary(pb)]);
      const [stepA, stepB] = await Promise.all([burnedStep(pa), burnedStep(pb)]);
      const [sizeA, sizeB] = await Promise.all([pa, pb].map((p) => p.evaluate(() => {
        const v = document.querySelector('lockstep-player').video;
        return `${v.videoWidth}x${v.videoHeight}`;
      })));
      const detail = JSON.stringify({ sa, sb, stepA, stepB, sizeA, sizeB });
      assert.equal(sizeA, '640x360', detail);
      assert.equal(sizeB, '480x270', detail);
      assert.ok(stepA >= 25 && stepA <= 45, `a: 30 fps barcodes, step ${stepA} ms: ${detail}`);
      assert.ok(stepB >= 40 && stepB <= 60, `b: 20 fps barcodes, step ${stepB} ms: ${detail}`);
      for (const [s, n] of [[sa, 'a'], [sb, 'b']]) {
        assert.ok(s.count >= 0.9 * s.presentedFrames && s.presentedFrames > 50, `${n}: ${detail}`);
        assert.ok(s.p50 > 0 && s.p50 < 5000, `${n}: p50 ${s.p50}: ${detail}`);
      }
    } finally {
      await Promise.all([pa.close(), pb.close()]);
      await srcB.stop();
    }
  });

  test('Opus audio (Enhanced RTMP) plays in both modes', async () => {
    const src = startSource(`${relay.rtmp('opus')}?key=${KEY}`, { seconds: 60, audio: 'opus' });
    await waitLive(relay, 'opus', 20000).catch((e) => { throw new Error(`${e.message}\nsource log:\n${src.log}`); });
    try {
      // The relay announces the audio track once its first Opus tag is in.
      let ch;
      for (const until = Date.now() + 5000; Date.now() < until; await sleep(100)) {
        ch = (await relay.json('/api/channels')).channels.find((c) => c.name === 'opus');
        if (ch?.audio_codec) break;
      }
      assert.equal(ch.audio_codec, 'opus', JSON.stringify(ch));
      assert.equal(ch.audio_sample_rate, 48000, JSON.stringify(ch));
      for (const mode of ['webcodecs', 'mse']) {
        const page = await browser.newPage();
        const problems = [];
        page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
        try {
          await page.goto(`${relay.base}/?channel=opus&probe=1&mode=${mode}`, { timeout: 15000 });
          await waitInPage(page, () => window.lockstepProbe && window.lockstepProbe.summary().count >= 10,
            null, 15000, `${mode}: first decoded barcodes`);
          const stats = () => page.evaluate(() => document.querySelector('lockstep-player').player.stats);
          const s0 = await stats();
          const f0 = (await summary(page)).presentedFrames;
          await sleep(2000);
          const s = await stats();
          const f1 = (await summary(page)).presentedFrames;
          const detail = JSON.stringify(s);
          assert.equal(s.mode, mode, detail);
          assert.ok(f1 - f0 >= 40, `${mode}: presented frames ${f0} -> ${f1}`);
          if (mode === 'webcodecs') {
            // 10 ms Opus packets: ~200 due in 2 s; the audio path must keep up.
            assert.equal(s.audioContext, 'running', detail);
            assert.ok(s.audioScheduled - s0.audioScheduled >= 150, `audioScheduled ${s0.audioScheduled} -> ${s.audioScheduled}`);
            assert.ok(Math.abs(s.avOffsetMs) < 40, `avOffsetMs ${s.avOffsetMs}`);
            console.log(`opus, webcodecs: latency ${s.latencyMs?.toFixed(1)} target ${s.targetLatencyMs} audio lag ${s.audioLagMs?.toFixed(1)} A/V ${s.avOffsetMs?.toFixed(1)}`);
          } else {
            const decoded = await page.evaluate(() => document.querySelector('lockstep-player').video.webkitAudioDecodedByteCount);
            assert.ok(decoded > 0, `${mode}: no audio decoded: ${detail}`);
          }
          assert.deepEqual(problems, []);
        } finally {
          await page.close();
        }
      }
    } finally {
      await src.stop();
    }
  });

  test('a viewer joining mid-GOP shows a picture at once', async () => {
    // Warm the browser's cache with the page and the player, so the join below happens close
    // to when it is asked for.
    const warm = await browser.newPage();
    await warm.goto(`${relay.base}/?channel=a&probe=1`);
    await waitInPage(warm, () => window.lockstepProbe && window.lockstepProbe.summary().count > 0, null, 15000, 'warm-up page plays');
    await warm.close();

    // Join at a random moment 0.4 to 0.6 s after a keyframe (1 s GOP at 30 fps: keyframes are
    // the video frames 1, 31, 61, ... counted by the relay), minus ~3 frames for page load.
    const wantFrames = 12 + Math.floor(Math.random() * 7) - 3; // frames after the keyframe
    const deadline = Date.now() + 5000;
    let since;
    for (;;) {
      const { channels } = await relay.json('/api/channels');
      const ch = channels.find((c) => c.name === 'a');
      since = (ch.video_frames - 1) % 30;
      if (since === wantFrames) break;
      assert.ok(Date.now() < deadline, `never saw ${wantFrames} frames after a keyframe (last ${since})`);
      await sleep(5);
    }
    const page = await openProbePage(browser, relay.base, 'a');
    try {
      const first = await waitInPage(page, () => {
        const s = window.lockstepProbe.summary();
        return s.firstFrameMs !== null && { firstFrameMs: s.firstFrameMs, start: window.lockstepPlayerStart };
      }, null, 10000, 'a first presented frame');
      const startupMs = first.firstFrameMs - first.start;
      const firstSample = await page.evaluate(() => window.lockstepProbe.samples()[0] || null);
      console.log(`mid-GOP join ~${since} frames after a keyframe: first frame ${startupMs.toFixed(0)} ms after player start`);
      assert.ok(startupMs <= 1500,
        `first frame ${startupMs.toFixed(0)} ms after player start (joined ${since} frames after a keyframe); ${JSON.stringify(firstSample)}`);
      // It keeps playing.
      await waitInPage(page, () => window.lockstepProbe.summary().count >= 30, null, 5000, '30 decoded frames after the join');
    } finally {
      await page.close();
    }
  });
});

// Not a test: a last resort if a test threw before its own cleanup.
process.on('exit', () => { for (const s of sources) try { s.proc.kill('SIGKILL'); } catch { /* gone */ } });
