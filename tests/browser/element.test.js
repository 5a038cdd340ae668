// The <lockstep-player> custom element: plays, mute by click and keyboard, volume by Tab.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanup, currentTimeAdvance, launchBrowser, makeFlvs, requireBuilt, startRelay, tempDir,
  waitInPage, waitLive,
} from './harness.js';

const EL = "document.querySelector('lockstep-player')";
const VIDEO = `${EL}.shadowRoot.querySelector('video')`;

describe('<lockstep-player>', { timeout: 90000 }, () => {
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

  test('plays, and its volume controls work by mouse and keyboard', async () => {
    const page = await browser.newPage();
    page.setDefaultTimeout(10000);
    try {
      await page.goto(`${relay.base}/`);
      await page.evaluate(async (src) => {
        await import('/player/lockstep-player.js');
        window.events = [];
        const holder = document.createElement('div');
        holder.innerHTML = `<lockstep-player src="${src}"></lockstep-player>`;
        const el = holder.firstElementChild;
        for (const t of ['state', 'error']) el.addEventListener(t, (e) => window.events.push([t, e.detail, performance.now()]));
        document.body.prepend(holder);
        await el.player.ready;
      }, relay.ws('live'));

      // Plays: the element's own player reaches 'playing' and its shadow video advances.
      await waitInPage(page, `${EL}.player && ${EL}.player.state === 'playing'`, undefined, 10000, 'element playing');
      const adv = await currentTimeAdvance(page, 1500, VIDEO);
      assert.ok(adv.advanced > 0.7, `shadow video currentTime advanced ${adv.advanced} s in 1.5 s`);
      const evs = await page.evaluate(() => window.events.map((e) => [e[0], e[1]]));
      assert.ok(evs.some(([t, d]) => t === 'state' && d === 'playing'), `no 'state' event re-dispatched: ${JSON.stringify(evs)}`);

      const muted = () => page.evaluate((s) => eval(s).muted, VIDEO);
      const mute = page.locator('lockstep-player').locator('button.mute');
      const volume = page.locator('lockstep-player').locator('input.volume');
      assert.equal(await muted(), true, 'starts muted');
      assert.equal(await mute.getAttribute('aria-pressed'), 'true');

      // Click toggles.
      await mute.click();
      assert.equal(await muted(), false, 'click did not unmute');
      assert.equal(await mute.getAttribute('aria-pressed'), 'false');
      await mute.click();
      assert.equal(await muted(), true, 'second click did not mute');

      // Keyboard: Enter and Space on the focused button.
      await mute.focus();
      await page.keyboard.press('Enter');
      assert.equal(await muted(), false, 'Enter did not unmute');
      await page.keyboard.press(' ');
      assert.equal(await muted(), true, 'Space did not mute');

      // Tab from the mute button reaches the volume slider, which works with arrow keys.
      await page.keyboard.press('Tab');
      const focused = await page.evaluate((s) => {
        const a = eval(s).shadowRoot.activeElement;
        return a && a.className;
      }, EL);
      assert.equal(focused, 'volume', 'Tab from the mute button did not reach the volume slider');
      // Muted, the slider shows 0; ArrowRight raises the volume one step and unmutes.
      assert.equal(await volume.inputValue(), '0', 'the slider should show 0 while muted');
      await page.keyboard.press('ArrowRight');
      const vol = await page.evaluate((s) => ({ volume: eval(s).volume, muted: eval(s).muted }), VIDEO);
      assert.ok(vol.volume > 0 && vol.volume < 0.5, `volume after ArrowRight on the slider: ${vol.volume}`);
      assert.equal(vol.muted, false, 'raising the volume slider should unmute');

      // The slider is also reachable by Tab from the start of the document.
      await page.evaluate(() => { document.activeElement?.blur(); window.focus(); });
      let reached = false;
      for (let i = 0; i < 20 && !reached; i++) {
        await page.keyboard.press('Tab');
        reached = await page.evaluate((s) => eval(s).shadowRoot.activeElement?.className === 'volume', EL);
      }
      assert.ok(reached, 'the volume slider is not reachable with Tab from the start of the page');

      // M on the focused element toggles mute.
      await page.locator('lockstep-player').focus();
      const m0 = await muted();
      await page.keyboard.press('m');
      assert.equal(await muted(), !m0, "'m' did not toggle mute");

      const errors = (await page.evaluate(() => window.events)).filter((e) => e[0] === 'error');
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
});
