// Recovery without a page reload: the relay restarting (same ports, same source), and the
// publisher restarting (timestamps back to 0: a new epoch).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanup, currentTimeAdvance, launchBrowser, makeFlvs, openPlayer, playerEvents, requireBuilt,
  sleep, startPublisher, startRelay, tempDir, waitInPage, waitLive, waitPlaying,
} from './harness.js';

describe('restarts', { timeout: 150000 }, () => {
  let flv;
  let stateAfterSourceRestart;
  let browser;

  before(async () => {
    requireBuilt();
    flv = await makeFlvs(tempDir(), ['av']);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await cleanup();
  });

  test('relay restart: the player reconnects and plays again on the same page', async () => {
    const args = ['--file', `live=${flv.av}`, '--loop'];
    let relay = await startRelay({ args });
    await waitLive(relay, 'live');
    const page = await openPlayer(browser, relay.base, { channel: 'live', mode: 'mse' }, { instrument: true });
    try {
      await waitPlaying(page, 10000);
      await page.evaluate(() => { window.marker = 'same page'; });
      const before1 = await currentTimeAdvance(page, 1000);
      assert.ok(before1.advanced > 0.5, `currentTime advanced ${before1.advanced} s before the restart`);

      const { httpPort, rtmpPort } = relay;
      await relay.stop({ signal: 'SIGKILL' });
      await waitInPage(page, () => window.events.some((e) => e[0] === 'state' && e[1] === 'reconnecting'),
        undefined, 5000, "'reconnecting' after the relay died");
      const killedAt = await page.evaluate(() => performance.now());

      relay = await startRelay({ httpPort, rtmpPort, args });
      await waitLive(relay, 'live');
      // Back to playing after the reconnect (a 'playing' state event later than the kill).
      await waitInPage(page, (t) => p.state === 'playing'
        && window.events.some((e) => e[0] === 'state' && e[1] === 'playing' && e[2] > t),
      killedAt, 15000, "'playing' again after the relay restart");
      const after1 = await currentTimeAdvance(page, 2000);
      assert.ok(after1.advanced > 1.0, `currentTime advanced ${after1.advanced} s in 2 s after the restart (${after1.t0} -> ${after1.t1})`);

      assert.equal(await page.evaluate(() => window.marker), 'same page', 'the page was reloaded');
      const sockets = await page.evaluate(() => window.__probe.count().sockets);
      assert.ok(sockets >= 2, `expected a new WebSocket after the restart, saw ${sockets} in all`);
      // The clock-sync connection comes back too (pings return to it).
      await page.waitForFunction(() => p.stats.clockConnection === true, null, { timeout: 5000 })
        .catch(() => assert.fail('no clock connection after the relay restart'));
      const s = await page.evaluate(() => p.stats);
      assert.equal(typeof s.latencyMs, 'number');
      assert.ok(s.latencyMs > 0 && s.latencyMs < 5000, `latencyMs ${s.latencyMs} after the restart`);
    } finally {
      await page.close();
      await relay.stop();
    }
  });

  test('source restart: a new epoch, a discontinuity event, playback continues', async () => {
    const relay = await startRelay();
    let pub = startPublisher(flv.av, relay.rtmp('src'));
    try {
      await waitLive(relay, 'src');
      const page = await openPlayer(browser, relay.base, { channel: 'src', mode: 'mse' }, { instrument: true });
      try {
        await waitPlaying(page, 10000);
        await page.evaluate(() => { window.marker = 'same page'; });
        const epoch0 = await page.evaluate(() => p.stats.epoch);
        const before1 = await currentTimeAdvance(page, 1000);
        assert.ok(before1.advanced > 0.5, `currentTime advanced ${before1.advanced} s before the restart`);

        await pub.stop({ signal: 'SIGKILL' });
        await waitInPage(page, () => window.events.some((e) => e[0] === 'ended'), undefined, 8000,
          "'ended' after the publisher left");
        const { endedAt, oldEnd } = await page.evaluate(() => ({
          endedAt: performance.now(),
          oldEnd: v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0,
        }));
        await sleep(300);

        pub = startPublisher(flv.av, relay.rtmp('src'));
        await waitInPage(page, (t) => window.events.some((e) => e[0] === 'discontinuity' && e[2] > t),
          endedAt, 10000, "'discontinuity' after the publisher came back");
        // The new epoch's media arrives and plays.
        await waitInPage(page, () => v.readyState >= 3 && !v.paused, undefined, 10000, 'video playing after the publisher came back');
        // Media of the new epoch plays: the playhead goes well past what the old one buffered.
        await waitInPage(page, (end) => v.currentTime > end + 1.0, oldEnd, 10000,
          `currentTime past the old epoch's buffered end (${oldEnd}) + 1 s`);
        const after1 = await currentTimeAdvance(page, 2000);
        assert.ok(after1.advanced > 1.0, `currentTime advanced ${after1.advanced} s in 2 s after the source restart (${after1.t0} -> ${after1.t1})`);

        const info = await page.evaluate(() => ({ marker: window.marker, probe: window.__probe.count(), stats: p.stats }));
        stateAfterSourceRestart = info.stats.state;
        assert.equal(info.marker, 'same page', 'the page was reloaded');
        assert.equal(info.probe.sockets, 1, 'the player opened a new WebSocket: the source restart should not need one');
        assert.ok(info.stats.epoch > epoch0, `epoch ${epoch0} -> ${info.stats.epoch}`);
        const errors = (await playerEvents(page)).filter(([t]) => t === 'error');
        assert.deepEqual(errors, []);
      } finally {
        await page.close();
      }
    } finally {
      await pub.stop();
      await relay.stop();
    }
  });

  // After End the player is 'ended'; the next publisher's epoch must bring it back to
  // 'playing' even when the buffer covered the gap and the video never stalled.
  test("state is 'playing' again after the source restart", () => {
    assert.equal(stateAfterSourceRestart, 'playing');
  });
});
