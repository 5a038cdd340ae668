// destroy() releases everything: the relay sees the viewer go, the <video> has no source, the
// player's timers are gone and it opens no further WebSocket.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanup, launchBrowser, makeFlvs, openPlayer, requireBuilt, sleep, startRelay, tempDir,
  waitLive, waitPlaying,
} from './harness.js';

async function viewers(relay) {
  const stats = await relay.json('/api/stats');
  return stats.totals.viewers;
}

describe('destroy()', { timeout: 90000 }, () => {
  let relay;
  let browser;

  before(async () => {
    requireBuilt();
    const flv = await makeFlvs(tempDir(), ['av']);
    relay = await startRelay({ args: ['--file', `live=${flv.av}`, '--loop'] });
    await waitLive(relay, 'live');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await cleanup();
  });

  test('releases the socket, the source, timers and listeners', async () => {
    const page = await openPlayer(browser, relay.base, { channel: 'live' }, { instrument: true });
    try {
      await waitPlaying(page, 10000);
      const running = await page.evaluate(() => ({ before: window.__before, now: window.__probe.count() }));
      // The player runs timers (control tick, pings, feedback) while it plays...
      assert.ok(running.now.playerIntervals >= 1, `no interval seen from the player: ${JSON.stringify(running)}`);
      assert.equal(running.now.sockets, 1);
      // ...and a clock-sync connection beside the media one, which the pings use.
      await page.waitForFunction(() => p.stats.clockConnection === true, null, { timeout: 5000 })
        .catch(() => assert.fail('the player does not ping on its clock connection'));
      assert.equal(await page.evaluate(() => window.__probe.count().clockSockets), 1);
      // ...and the relay counts it.
      assert.equal(await viewers(relay), 1, 'the relay does not count the playing viewer');

      const destroyedAt = await page.evaluate(() => {
        window.p.destroy();
        return performance.now();
      });

      // The relay sees the viewer leave within 2 s.
      const deadline = Date.now() + 2000;
      let n = await viewers(relay);
      while (n !== 0 && Date.now() < deadline) {
        await sleep(100);
        n = await viewers(relay);
      }
      assert.equal(n, 0, 'viewers in /api/stats 2 s after destroy()');

      const right = await page.evaluate(() => ({
        state: p.state,
        src: v.getAttribute('src'),
        srcProp: v.src,
        srcObject: v.srcObject,
        count: window.__probe.count(),
        socketState: window.__probe.sockets[0].ws.readyState,
        socketStates: window.__probe.sockets.map((x) => x.ws.readyState),
      }));
      assert.equal(right.state, 'destroyed');
      assert.equal(right.src, null, 'the video still has a src attribute');
      assert.equal(right.srcProp, '', 'the video still has a src');
      assert.equal(right.srcObject, null);
      assert.ok(right.socketStates.every((st) => st >= 2), `a WebSocket is still open (readyStates ${right.socketStates})`);
      assert.equal(right.count.intervals, running.before.intervals,
        `live intervals before the player ${running.before.intervals}, after destroy() ${right.count.intervals}`);
      assert.equal(right.count.playerIntervals, 0, 'intervals of the player left after destroy()');

      // Nothing afterwards: no new socket, no pending player timeout, no more events.
      await sleep(2000);
      const later = await page.evaluate((t) => ({
        count: window.__probe.count(),
        lateEvents: window.events.filter((e) => e[2] > t).map((e) => e[0]),
        socketState: window.__probe.sockets[0].ws.readyState,
      }), destroyedAt);
      assert.equal(later.count.sockets, 1, `WebSockets opened after destroy(): ${later.count.sockets - 1}`);
      assert.equal(later.count.clockSockets, 1, 'clock connections opened after destroy()');
      assert.equal(later.count.intervals, running.before.intervals, 'live intervals changed after destroy()');
      assert.equal(later.count.playerTimeouts, 0, 'timeouts of the player still pending 2 s after destroy()');
      assert.deepEqual(later.lateEvents, [], 'events after destroy()');
      assert.equal(later.socketState, 3, 'the WebSocket is not closed 2 s after destroy()');
      assert.equal(await viewers(relay), 0);
    } finally {
      await page.close();
    }
  });
});
