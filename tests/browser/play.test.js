// The player plays: audio+video, video-only and audio-only streams from the real relay.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanup, currentTimeAdvance, launchBrowser, makeFlvs, openPlayer, playerEvents, requireBuilt,
  sleep, startRelay, tempDir, waitLive, waitPlaying,
} from './harness.js';

describe('playback', { timeout: 120000 }, () => {
  let relay;
  let browser;

  before(async () => {
    requireBuilt();
    const flv = await makeFlvs(tempDir());
    relay = await startRelay({
      args: ['--file', `live=${flv.av}`, '--file', `vonly=${flv.video}`, '--file', `aonly=${flv.audio}`, '--loop'],
    });
    await Promise.all(['live', 'vonly', 'aonly'].map((c) => waitLive(relay, c)));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await cleanup();
  });

  test('audio+video stream plays: time, frames, pixels, audio, stats', async () => {
    const page = await openPlayer(browser, relay.base, { channel: 'live', targetLatencyMs: 150, mode: 'mse' });
    try {
      await waitPlaying(page, 10000);

      const q0 = await page.evaluate(() => ({
        frames: v.getVideoPlaybackQuality().totalVideoFrames,
        audio: v.webkitAudioDecodedByteCount,
      }));
      const grab = () => page.evaluate(() => {
        const c = document.createElement('canvas');
        c.width = 160;
        c.height = 90;
        const g = c.getContext('2d', { willReadFrequently: true });
        g.drawImage(v, 0, 0, c.width, c.height);
        return Array.from(g.getImageData(0, 0, c.width, c.height).data);
      });
      const img0 = await grab();
      const { t0, t1, advanced } = await currentTimeAdvance(page, 1000);
      const img1 = await grab();
      await sleep(2000);
      const t2 = await page.evaluate(() => v.currentTime);
      const q1 = await page.evaluate(() => ({
        frames: v.getVideoPlaybackQuality().totalVideoFrames,
        audio: v.webkitAudioDecodedByteCount,
        stats: p.stats,
        state: p.state,
      }));

      // currentTime advances over 3 s (about 3 s of media; the controller may nudge the rate).
      assert.ok(advanced > 0.5, `currentTime advanced ${advanced} s in 1 s (${t0} -> ${t1})`);
      assert.ok(t2 - t0 > 2.0, `currentTime advanced ${t2 - t0} s in 3 s (${t0} -> ${t2})`);
      // Frames are decoded.
      assert.ok(q1.frames > q0.frames + 30, `totalVideoFrames ${q0.frames} -> ${q1.frames}`);
      // The picture changes (testsrc2 moves) and is not blank.
      assert.equal(img0.length, img1.length);
      let diff = 0;
      let lit = 0;
      for (let i = 0; i < img0.length; i += 4) {
        if (Math.abs(img0[i] - img1[i]) + Math.abs(img0[i + 1] - img1[i + 1]) + Math.abs(img0[i + 2] - img1[i + 2]) > 30) diff++;
        if (img1[i] + img1[i + 1] + img1[i + 2] > 60) lit++;
      }
      const pixels = img0.length / 4;
      assert.ok(lit > pixels / 4, `the frame is mostly black (${lit}/${pixels} lit pixels)`);
      assert.ok(diff > pixels / 100, `only ${diff}/${pixels} pixels changed in 1 s`);
      // Audio is decoded.
      assert.ok(q0.audio > 0, `webkitAudioDecodedByteCount ${q0.audio}`);
      assert.ok(q1.audio > q0.audio, `webkitAudioDecodedByteCount did not grow: ${q0.audio} -> ${q1.audio}`);
      // Statistics.
      const s = q1.stats;
      assert.equal(typeof s.latencyMs, 'number', `latencyMs ${s.latencyMs}`);
      assert.ok(s.latencyMs > 0 && s.latencyMs < 5000, `latencyMs ${s.latencyMs}`);
      assert.equal(typeof s.startupMs, 'number', `startupMs ${s.startupMs}`);
      assert.ok(s.startupMs > 0 && s.startupMs < 10000, `startupMs ${s.startupMs}`);
      assert.deepEqual(s.tracks.map((t) => t.split(':')[0]).sort(), ['audio', 'video']);
      assert.equal(q1.state, 'playing');
      const errors = (await playerEvents(page)).filter(([t]) => t === 'error');
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });

  for (const [channel, kind] of [['vonly', 'video'], ['aonly', 'audio']]) {
    test(`${kind}-only stream starts and plays`, async () => {
      const page = await openPlayer(browser, relay.base, { channel, mode: 'mse' });
      try {
        await waitPlaying(page, 10000);
        const { t0, t1, advanced } = await currentTimeAdvance(page, 2000);
        assert.ok(advanced > 1.0, `currentTime advanced ${advanced} s in 2 s (${t0} -> ${t1})`);
        const info = await page.evaluate(() => ({
          stats: p.stats,
          frames: v.getVideoPlaybackQuality().totalVideoFrames,
          audio: v.webkitAudioDecodedByteCount,
        }));
        assert.deepEqual(info.stats.tracks.map((t) => t.split(':')[0]), [kind]);
        if (kind === 'video') assert.ok(info.frames > 30, `totalVideoFrames ${info.frames}`);
        else assert.ok(info.audio > 0, `webkitAudioDecodedByteCount ${info.audio}`);
        assert.equal(typeof info.stats.latencyMs, 'number', `latencyMs ${info.stats.latencyMs}`);
        const errors = (await playerEvents(page)).filter(([t]) => t === 'error');
        assert.deepEqual(errors, []);
      } finally {
        await page.close();
      }
    });
  }
});
