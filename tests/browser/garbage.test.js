// Garbage from the server: a tiny WebSocket server (RFC 6455 by hand) that accepts the
// lockstep.v1 subprotocol and sends a malformed binary message or a text message. The player
// must report an error (not hang), close the socket with the right code, and retry.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import {
  cleanup, freePort, launchBrowser, openPlayer, requireBuilt, sleep, startRelay, waitInPage, withTimeout,
} from './harness.js';

// RFC 6455 section 1.3 (note: not ...C5AB0DC11B65).
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame(opcode, payload) {
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([0x80 | opcode, len]);
  else if (len < 65536) head = Buffer.from([0x80 | opcode, 126, len >> 8, len & 255]);
  else throw new Error('frame too big for this test server');
  return Buffer.concat([head, payload]);
}

/** Parses masked client frames; calls onFrame(opcode, payload). */
function frameReader(onFrame) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0] & 0x0f;
      const masked = buf[1] & 0x80;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskOff + (i & 3)];
      buf = buf.subarray(off + len);
      onFrame(opcode, payload);
    }
  };
}

/** The garbage server: /ws/binary sends 0x81 0x00 (a truncated StreamInfo), /ws/text a text frame. */
async function garbageServer() {
  const port = await freePort();
  const conns = []; // { path, protocol, closeCode, at }
  const sockets = new Set();
  const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
  server.on('upgrade', (req, socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const key = req.headers['sec-websocket-key'];
    const offered = String(req.headers['sec-websocket-protocol'] || '').split(',').map((s) => s.trim());
    const conn = { path: req.url, protocol: offered.includes('lockstep.v1') ? 'lockstep.v1' : null, closeCode: null, at: Date.now() };
    conns.push(conn);
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    socket.write([
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${accept}`,
      ...(conn.protocol ? [`Sec-WebSocket-Protocol: ${conn.protocol}`] : []),
      '', '',
    ].join('\r\n'));
    socket.on('data', frameReader((opcode, payload) => {
      if (opcode === 8) {
        conn.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005; // 1005: no code given
        conn.closeReason = payload.subarray(2).toString('utf8');
        socket.end(frame(8, payload.subarray(0, 2)));
      }
    }));
    if (req.url.endsWith('/binary')) socket.write(frame(2, Buffer.from([0x81, 0x00])));
    else if (req.url.endsWith('/text')) socket.write(frame(1, Buffer.from('{"hello":"not lockstep"}')));
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    port,
    conns,
    url: (p) => `ws://127.0.0.1:${port}${p}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return withTimeout(new Promise((r) => server.close(r)), 5000, 'garbage server close');
    },
  };
}

describe('garbage from the server', { timeout: 90000 }, () => {
  let relay;
  let browser;
  let garbage;

  before(async () => {
    requireBuilt();
    garbage = await garbageServer();
    relay = await startRelay(); // serves the page and the player; no channel needed
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await garbage?.close().catch(() => {});
    await cleanup();
  });

  const closes = {};

  for (const kind of ['binary', 'text']) {
    test(`a ${kind === 'binary' ? 'malformed binary (truncated StreamInfo)' : 'text'} message gives an error event`, async (t) => {
      const path = `/ws/x/${kind}`;
      const first = garbage.conns.length;
      const page = await openPlayer(browser, relay.base, { url: garbage.url(path) });
      try {
        const err = await waitInPage(page, () => {
          const e = window.events.find((x) => x[0] === 'error');
          return e && { detail: e[1], state: p.state };
        }, undefined, 5000, `an 'error' event after a ${kind} message`);
        assert.equal(typeof err.detail, 'string');
        assert.ok(err.detail.length > 0, 'empty error detail');
        assert.ok(['error', 'reconnecting'].includes(err.state), `state ${err.state}`);
        // The page is alive (not hung in a loop).
        const alive = await withTimeout(page.evaluate(() => 1 + 1), 2000, 'page responsive');
        assert.equal(alive, 2);
        const stats = await page.evaluate(() => p.stats);
        assert.equal(typeof stats.error, 'string', 'stats.error not set');

        const mine = garbage.conns.slice(first).filter((c) => c.path === path);
        assert.ok(mine.length >= 1, 'the player never connected to the garbage server');
        assert.equal(mine[0].protocol, 'lockstep.v1', 'the player did not offer lockstep.v1');
        // The player closes the connection (a close frame, not just a dropped TCP connection).
        const deadline = Date.now() + 3000;
        while (mine[0].closeCode === null && Date.now() < deadline) await sleep(50);
        assert.notEqual(mine[0].closeCode, null, `the player did not close the WebSocket after a ${kind} message`);
        closes[kind] = mine[0];

        // It keeps trying (reconnect with backoff), without a hot loop.
        await sleep(3000);
        const tries = garbage.conns.slice(first).filter((c) => c.path === path).length;
        t.diagnostic(`${tries} connections in about 4 s; close code ${mine[0].closeCode}`);
        assert.ok(tries >= 2, `no reconnect attempt after the error (${tries} connection)`);
        closes[kind].tries = tries;
        assert.ok(tries <= 20, `${tries} connections in about 4 s: reconnecting in a tight loop`);
        await page.evaluate(() => p.destroy());
      } finally {
        await page.close();
      }
    });
  }

  // A browser's WebSocket.close() only accepts 1000 or 3000-4999: the player sends 4002 /
  // 4003 for the protocol's 1002 / 1003 (PROTOCOL.md, close codes), with a reason.
  test('the close frame says why (a code and a reason)', () => {
    for (const kind of ['binary', 'text']) {
      const c = closes[kind];
      assert.ok(c, `no close recorded for ${kind}`);
      assert.equal(c.closeCode, kind === 'binary' ? 4002 : 4003, `${kind}: close code (reason ${JSON.stringify(c.closeReason)})`);
      assert.ok(c.closeReason.length > 0, `${kind}: close frame without a reason (code ${c.closeCode})`);
    }
  });

  // Every connection opens and then fails: the backoff must grow (250, 500, 1000, 2000 ms...
  // about 5 tries in 4 s), not restart at each open.
  test('backoff grows while every connection fails', () => {
    for (const kind of ['binary', 'text']) {
      assert.ok(closes[kind]?.tries <= 7, `${kind}: ${closes[kind]?.tries} connections in about 4 s`);
    }
  });
});
