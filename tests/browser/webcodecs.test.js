// The WebCodecs path ("sub-40 ms mode"): auto picks it on this Chromium; frames are decoded
// and presented through a MediaStreamTrackGenerator (requestVideoFrameCallback fires, pixels
// change), audio is decoded into a running AudioContext; a decoder failure falls back to MSE
// without a reload; a publisher restart at a new resolution reconfigures the decoder; no
// VideoFrame leaks over a minute. MSE mode (mode: 'mse') still plays alongside.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  cleanup, launchBrowser, makeFlvs, openPlayer, playerEvents, requireBuilt, sleep, startPublisher,
  startRelay, tempDir, waitInPage, waitLive, waitPlaying,
} from './harness.js';

/** Frames the <video> presents in `ms` (requestVideoFrameCallback), and the last metadata. */
function videoFrames(page, ms) {
  return page.evaluate((ms) => new Promise((resolve) => {
    let n = 0;
    let last = null;
    let stop = false;
    const cb = (_now, meta) => {
      n++;
      last = { width: meta.width, height: meta.height };
      if (!stop) v.requestVideoFrameCallback(cb);
    };
    v.requestVideoFrameCallback(cb);
    setTimeout(() => { stop = true; resolve({ n, last }); }, ms);
  }), ms);
}

/** A 160x90 RGBA grab of the <video>. */
function grab(page) {
  return page.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 160;
    c.height = 90;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, c.width, c.height);
    return Array.from(g.getImageData(0, 0, c.width, c.height).data);
  });
}

async function assertPictureMoves(page) {
  const img0 = await grab(page);
  await sleep(1000);
  const img1 = await grab(page);
  let diff = 0;
  let lit = 0;
  for (let i = 0; i < img0.length; i += 4) {
    if (Math.abs(img0[i] - img1[i]) + Math.abs(img0[i + 1] - img1[i + 1]) + Math.abs(img0[i + 2] - img1[i + 2]) > 30) diff++;
    if (img1[i] + img1[i + 1] + img1[i + 2] > 60) lit++;
  }
  const pixels = img0.length / 4;
  assert.ok(lit > pixels / 4, `the frame is mostly black (${lit}/${pixels} lit pixels)`);
  assert.ok(diff > pixels / 100, `only ${diff}/${pixels} pixels changed in 1 s`);
}

function ffmpeg(args) {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60000 });
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
}

describe('webcodecs', { timeout: 240000 }, () => {
  let relay;
  let browser;
  let dir;

  before(async () => {
    requireBuilt();
    dir = tempDir();
    const flv = await makeFlvs(dir, ['av']);
    relay = await startRelay({ args: ['--file', `live=${flv.av}`, '--loop'] });
    await waitLive(relay, 'live');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await cleanup();
  });

  test("auto picks WebCodecs here: video presented, audio running, stats", async () => {
    const page = await openPlayer(browser, relay.base, { channel: 'live' });
    try {
      await waitPlaying(page, 10000);
      const s0 = await page.evaluate(() => p.stats);
      assert.equal(s0.mode, 'webcodecs', `auto chose ${s0.mode} (${s0.fallbackReason || ''})`);
      const f = await videoFrames(page, 1000);
      assert.ok(f.n >= 15, `requestVideoFrameCallback fired ${f.n} times in 1 s`);
      assert.deepEqual(f.last, { width: 640, height: 360 });
      await assertPictureMoves(page);
      await sleep(1500);
      const s = await page.evaluate(() => p.stats);
      assert.equal(s.mode, 'webcodecs');
      assert.ok(s.framesPresented > s0.framesPresented + 45, `framesPresented ${s0.framesPresented} -> ${s.framesPresented}`);
      assert.equal(s.audioContext, 'running');
      // Audio keeps flowing: in 1.5 s about 65 AAC frames are due (44.1 kHz); at least half
      // must have been scheduled (the start, before clock sync settles, may drop a few).
      assert.ok(s.audioScheduled - s0.audioScheduled >= 32,
        `audioScheduled ${s0.audioScheduled} -> ${s.audioScheduled}`);
      assert.equal(typeof s.avOffsetMs, 'number', `avOffsetMs ${s.avOffsetMs}`);
      assert.ok(Math.abs(s.avOffsetMs) < 40, `avOffsetMs ${s.avOffsetMs}`);
      assert.equal(typeof s.latencyMs, 'number', `latencyMs ${s.latencyMs}`);
      assert.ok(s.latencyMs > 0 && s.latencyMs < 1000, `latencyMs ${s.latencyMs}`);
      assert.ok(Math.abs(s.latencyMs - s.targetLatencyMs) < 30, `latencyMs ${s.latencyMs} vs target ${s.targetLatencyMs}: ${JSON.stringify(s)}`);
      // Frames waiting for their due time: about D / frame duration, plus a few in flight.
      assert.ok(s.openFrames <= s.targetLatencyMs / 33 + 8, `openFrames ${s.openFrames} at D ${s.targetLatencyMs}`);
      assert.equal(typeof s.decodeQueueSize, 'number');
      assert.equal(typeof s.framesDroppedLate, 'number');
      console.log(`webcodecs: latencyMs ${s.latencyMs.toFixed(1)} target ${s.targetLatencyMs} decodeP95 ${s.decodeP95Ms} arrivalP95 ${s.arrivalP95Ms} required ${s.requiredLatencyMs} presented ${s.framesPresented} droppedLate ${s.framesDroppedLate} avOffset ${s.avOffsetMs.toFixed(1)} presentError ${s.presentErrorMs}`);
      // Its Feedback carries the display's refresh grid (protocol 1.4), which the relay
      // shows and aligns D with: ~16.7 ms in headless Chromium, a phase within it.
      let me;
      const until = Date.now() + 5000;
      while (Date.now() < until) {
        const st = await relay.json('/api/stats?channel=live');
        me = st.channels[0].viewer_list.viewers.find((v) => v.mode === 'webcodecs' && v.refresh_period_ms);
        if (me) break;
        await sleep(250);
      }
      assert.ok(me, 'no WebCodecs viewer reported its refresh grid within 5 s');
      assert.ok(me.refresh_period_ms > 10 && me.refresh_period_ms < 25, `refresh_period_ms ${me.refresh_period_ms}`);
      assert.ok(me.refresh_phase_ms >= 0 && me.refresh_phase_ms < me.refresh_period_ms,
        `refresh_phase_ms ${me.refresh_phase_ms} of ${me.refresh_period_ms}`);
      const errors = (await playerEvents(page)).filter(([t]) => t === 'error');
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });

  test("mode 'mse' still plays", async () => {
    const page = await openPlayer(browser, relay.base, { channel: 'live', mode: 'mse' });
    try {
      await waitPlaying(page, 10000);
      const f = await videoFrames(page, 1000);
      assert.ok(f.n >= 15, `requestVideoFrameCallback fired ${f.n} times in 1 s`);
      await assertPictureMoves(page);
      const s = await page.evaluate(() => p.stats);
      assert.equal(s.mode, 'mse');
      assert.ok(await page.evaluate(() => v.webkitAudioDecodedByteCount > 0), 'no audio decoded');
    } finally {
      await page.close();
    }
  });

  test('a decoder failure falls back to MSE without a reload and keeps playing', async () => {
    const page = await openPlayer(browser, relay.base,
      { channel: 'live', debug: { failDecoderAfterFrames: 60 } }, { instrument: true });
    try {
      await waitPlaying(page, 10000);
      await page.evaluate(() => { window.marker = 'same page'; });
      assert.equal(await page.evaluate(() => p.stats.mode), 'webcodecs');
      await waitInPage(page, () => p.stats.mode === 'mse', undefined, 15000, 'fallback to mse');
      await waitInPage(page, () => p.state === 'playing' && v.currentTime > 0.5, undefined, 15000, 'playing through MSE');
      const t0 = await page.evaluate(() => v.currentTime);
      await sleep(2000);
      const t1 = await page.evaluate(() => v.currentTime);
      assert.ok(t1 - t0 > 1.0, `MSE currentTime advanced ${t1 - t0} s in 2 s`);
      await assertPictureMoves(page);
      const s = await page.evaluate(() => p.stats);
      assert.equal(s.fallbacks, 1);
      assert.match(s.fallbackReason, /decoder failures/);
      assert.equal(await page.evaluate(() => window.marker), 'same page', 'the page was reloaded');
      assert.ok(await page.evaluate(() => window.__probe.count().sockets) >= 2, 'no reconnect after the fallback');
      const evs = await playerEvents(page);
      assert.deepEqual(evs.filter(([t]) => t === 'error'), []);
    } finally {
      await page.close();
    }
  });

  test('a publisher restart at a new resolution reconfigures the decoder', async () => {
    const big = path.join(dir, 'big.flv');
    const small = path.join(dir, 'small.flv');
    const enc = ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k', '-t', '6', '-f', 'flv'];
    ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', ...enc, big]);
    ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=660:sample_rate=48000', ...enc, small]);
    let pub = startPublisher(big, relay.rtmp('res'));
    await waitLive(relay, 'res');
    const page = await openPlayer(browser, relay.base, { channel: 'res' });
    try {
      await waitPlaying(page, 10000);
      await waitInPage(page, () => v.videoWidth === 640, undefined, 5000, 'videoWidth 640');
      assert.equal(await page.evaluate(() => p.stats.mode), 'webcodecs');
      await pub.stop();
      pub = startPublisher(small, relay.rtmp('res'));
      await waitInPage(page, () => v.videoWidth === 320 && v.videoHeight === 240, undefined, 15000, 'videoWidth 320 after the restart');
      const n0 = await page.evaluate(() => p.stats.framesPresented);
      const f = await videoFrames(page, 1000);
      assert.ok(f.n >= 15, `requestVideoFrameCallback fired ${f.n} times in 1 s after the restart`);
      assert.deepEqual(f.last, { width: 320, height: 240 });
      const s = await page.evaluate(() => p.stats);
      assert.equal(s.mode, 'webcodecs');
      assert.ok(s.framesPresented > n0 + 15, `framesPresented ${n0} -> ${s.framesPresented}`);
    } finally {
      await page.close();
      await pub.stop();
    }
  });

  test('no VideoFrame leak over a minute', async () => {
    const page = await openPlayer(browser, relay.base, { channel: 'live' });
    try {
      await waitPlaying(page, 10000);
      const samples = [];
      for (let i = 0; i < 30; i++) {
        await sleep(2000);
        samples.push(await page.evaluate(() => ({ open: p.stats.openFrames, d: p.stats.targetLatencyMs, presented: p.stats.framesPresented, heap: performance.memory ? performance.memory.usedJSHeapSize : 0 })));
      }
      // Open frames are those waiting for their due time: about D / frame duration (D may
      // change while the relay adapts it), plus a few in flight; never a growing count.
      const over = samples.filter((x) => x.open > x.d / 33 + 8);
      assert.deepEqual(over, [], `openFrames above D / frame + 8: ${JSON.stringify(samples.map((x) => [x.open, Math.round(x.d)]))}`);
      assert.ok(samples.at(-1).presented > samples[0].presented + 1500, `framesPresented ${samples[0].presented} -> ${samples.at(-1).presented}`);
      const heapEarly = Math.max(...samples.slice(2, 7).map((x) => x.heap));
      const heapLate = Math.max(...samples.slice(-5).map((x) => x.heap));
      if (heapEarly > 0) assert.ok(heapLate < heapEarly * 1.5 + 2e6, `JS heap grew ${heapEarly} -> ${heapLate}`);
    } finally {
      await page.close();
    }
  });
});
