// A delaying TCP proxy: a jittery network path on loopback, for the sync benchmark
// (bench/sync/run.mjs) and the sync test (tests/browser/sync.test.js).
//
//   import { startJitterProxy } from '../common/jitter-proxy.mjs';
//   const proxy = await startJitterProxy({ target: relayHttpPort, minMs: 50, maxMs: 150 });
//   // http://127.0.0.1:${proxy.port}/... reaches the relay, every chunk it sends back late
//   await proxy.close();
//
// Listens on 127.0.0.1 (a free port unless `port` is given) and forwards every connection to
// 127.0.0.1:`target`. Each chunk read from the target (the "down" direction: relay → viewer)
// is held for a random delay, uniform in [minMs, maxMs], but never overtakes the chunk before
// it: it is released at max(now + delay, release time of the previous chunk). That is how a
// jittery path with in-order TCP delivery behaves (a late segment holds back everything after
// it). The other direction (viewer → relay: requests, Pings, Feedback) is passed at once
// unless `upMinMs`/`upMaxMs` are set, then it is delayed the same way.
//
// Chunks are whatever the socket reads (one or several WebSocket frames, or part of one): the
// jitter applies per read, as it would per TCP segment train. Delays are drawn from a seeded
// generator when `seed` is given (repeatable runs). Nothing is dropped or reordered; an end or
// an error on one side is passed on after the data queued before it.
import net from 'node:net';

/** Mulberry32: a small seeded PRNG in [0, 1). */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One direction of one connection: chunks from `from` reach `to` after their delay, in order.
 * `delay()` returns ms (0: no holding, but still in order behind held chunks).
 */
function pipeDelayed(from, to, delay, stats) {
  const queue = []; // { at, chunk } or { at, end: true }
  let lastRelease = 0;
  let timer = null;
  let closed = false;

  const flush = () => {
    timer = null;
    if (closed) return;
    const now = performance.now();
    while (queue.length && queue[0].at <= now + 0.5) {
      const item = queue.shift();
      if (item.end) { to.end(); continue; }
      stats.chunks++;
      stats.bytes += item.chunk.length;
      to.write(item.chunk);
    }
    if (queue.length) timer = setTimeout(flush, Math.max(0, queue[0].at - performance.now()));
  };
  const push = (item) => {
    const now = performance.now();
    const at = Math.max(now + delay(), lastRelease);
    lastRelease = at;
    item.at = at;
    queue.push(item);
    if (!timer) timer = setTimeout(flush, Math.max(0, queue[0].at - now));
  };
  from.on('data', (chunk) => push({ chunk }));
  from.on('end', () => push({ end: true }));
  return {
    /** Drops what is queued (the connection is being torn down). */
    cancel() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      queue.length = 0;
    },
  };
}

/**
 * Starts the proxy. Options: `target` (port on 127.0.0.1, or { host, port }), `minMs`/`maxMs`
 * (down-direction delay range, default 50–150 ms), `upMinMs`/`upMaxMs` (default 0: none),
 * `port` (default: a free one), `seed` (default: Math.random).
 * Resolves to { port, close(), stats() }: close() stops listening and destroys every
 * connection; stats() counts connections and the chunks/bytes released each way.
 */
export async function startJitterProxy({ target, minMs = 50, maxMs = 150, upMinMs = 0, upMaxMs = 0, port = 0, seed } = {}) {
  const t = typeof target === 'number' ? { host: '127.0.0.1', port: target } : { host: '127.0.0.1', ...target };
  if (!(t.port > 0)) throw new Error('startJitterProxy: target port needed');
  if (!(minMs >= 0 && maxMs >= minMs) || !(upMinMs >= 0 && upMaxMs >= upMinMs)) {
    throw new Error('startJitterProxy: need 0 ≤ minMs ≤ maxMs (and 0 ≤ upMinMs ≤ upMaxMs)');
  }
  const random = seed === undefined ? Math.random : seeded(seed);
  const downDelay = () => minMs + (maxMs - minMs) * random();
  const upDelay = () => (upMaxMs > 0 ? upMinMs + (upMaxMs - upMinMs) * random() : 0);
  const sockets = new Set();
  const counters = { connections: 0, down: { chunks: 0, bytes: 0 }, up: { chunks: 0, bytes: 0 } };

  const server = net.createServer((client) => {
    counters.connections++;
    const upstream = net.connect(t.port, t.host);
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    }
    const down = pipeDelayed(upstream, client, downDelay, counters.down);
    const up = pipeDelayed(client, upstream, upDelay, counters.up);
    const teardown = () => {
      down.cancel();
      up.cancel();
      client.destroy();
      upstream.destroy();
    };
    // An error on either side, or one side closing before it ended cleanly, ends both. A
    // clean end is passed on in order (pipeDelayed queues it behind the data).
    client.on('error', teardown);
    upstream.on('error', teardown);
    client.on('close', () => { if (!client.readableEnded || upstream.destroyed) teardown(); });
    upstream.on('close', () => { if (!upstream.readableEnded) teardown(); });
  });
  server.on('error', () => {}); // listen errors are reported through the promise below

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  return {
    port: server.address().port,
    stats: () => JSON.parse(JSON.stringify(counters)),
    close() {
      for (const s of sockets) s.destroy();
      sockets.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
