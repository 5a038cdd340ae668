// The statistics dashboard (/stats, fed by /api/stats/stream): it counts real players as
// they come and go, shows each one's delay, and asks for the admin token when one is set.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanup, launchBrowser, makeFlvs, openPlayer, requireBuilt, startRelay, tempDir, waitLive, waitPlaying,
} from './harness.js';

/** Opens the dashboard at `path`, collecting page errors into page.problems. */
async function openDashboard(browser, base, path = '/stats') {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console.error: ${m.text()}`); });
  page.setDefaultTimeout(15000);
  await page.goto(`${base}${path}`, { timeout: 15000 });
  page.problems = problems;
  return page;
}

/** What the dashboard shows of channel `name`: viewer count, table rows, chart legend. */
function shown(page, name) {
  return page.evaluate((n) => {
    const card = document.querySelector(`[data-channel="${n}"]`);
    if (!card) return null;
    return {
      viewers: card.querySelector('[data-f="viewers"]').textContent,
      latency: card.querySelector('[data-f="latency"]').textContent,
      rows: [...card.querySelectorAll('tbody tr')].map((r) => ({
        addr: r.querySelector('[data-col="addr"]').textContent,
        agent: r.querySelector('[data-col="agent"]').title,
        delay: r.querySelector('[data-col="latency"]').textContent,
      })),
      chartViewers: card.querySelector('.chart .chart-value').textContent,
    };
  }, name);
}

/** Waits until `ok(shown(...))` holds; fails with the last view. */
async function waitShown(page, name, ok, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  for (;;) {
    last = await shown(page, name);
    if (last && ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; dashboard shows ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const isDelay = (text) => /^-?\d+ ms$/.test(text);

describe('statistics dashboard', { timeout: 120000 }, () => {
  let flv;
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

  test('shows viewers as they come and go, with their delay', async () => {
    const relay = await startRelay({ args: ['--file', `live=${flv.av}`, '--loop'] });
    await waitLive(relay, 'live');
    const dash = await openDashboard(browser, relay.base);
    const players = [];
    try {
      await waitShown(dash, 'live', (s) => s.viewers === '0', 5000, 'the channel card with 0 viewers');
      players.push(await openPlayer(browser, relay.base, { channel: 'live' }));
      players.push(await openPlayer(browser, relay.base, { channel: 'live' }));
      await Promise.all(players.map((p) => waitPlaying(p, 10000)));

      const two = await waitShown(dash, 'live',
        (s) => s.viewers === '2' && s.rows.length === 2 && s.rows.every((r) => isDelay(r.delay)),
        6000, 'viewer count 2 with a delay for each');
      for (const r of two.rows) {
        assert.match(r.addr, /^127\.0\.0\.1:\d+$/);
        assert.match(r.agent, /Chrome/);
      }
      assert.match(two.latency, /^-?\d+ \/ -?\d+ \/ -?\d+ \/ -?\d+ ms$/);
      // The viewers chart (sampled every 2 s by the relay) reaches 2 as well.
      await waitShown(dash, 'live', (s) => s.chartViewers === '2', 6000, 'the viewers chart at 2');

      await players.pop().close();
      await waitShown(dash, 'live', (s) => s.viewers === '1' && s.rows.length === 1, 5000, 'viewer count 1');
      assert.deepEqual(dash.problems, []);
    } finally {
      await Promise.all(players.map((p) => p.close().catch(() => {})));
      await dash.close();
      await relay.stop();
    }
  });

  test('asks for the admin token when one is set', async () => {
    const relay = await startRelay({ args: ['--file', `live=${flv.av}`, '--loop', '--admin-token', 's3cret'] });
    await waitLive(relay, 'live');
    const formShown = () => !document.getElementById('token-form').hidden;
    // Without a token: the form, and no statistics.
    const bare = await openDashboard(browser, relay.base);
    try {
      await bare.waitForFunction(formShown, null, { timeout: 5000, polling: 100 });
      assert.equal(await bare.locator('[data-channel]').count(), 0);
      // Typing the token in shows them.
      await bare.fill('#token-input', 's3cret');
      await bare.click('#token-form button[type=submit]');
      await waitShown(bare, 'live', (s) => s.viewers === '0', 5000, 'statistics after typing the token');
      assert.equal(await bare.evaluate(formShown), false);
    } finally {
      await bare.close();
    }
    // With ?token=: straight to the statistics.
    const given = await openDashboard(browser, relay.base, '/stats?token=s3cret');
    try {
      await waitShown(given, 'live', (s) => s.viewers === '0', 5000, 'statistics with ?token=');
      assert.equal(await given.evaluate(formShown), false);
      assert.deepEqual(given.problems.filter((p) => !p.includes('401')), []);
    } finally {
      await given.close();
      await relay.stop();
    }
  });
});
