// probe.js: glass-to-glass latency read off the picture (docs/BARCODE.md).
//
// The test source burns, into the top-left corner of every frame, the wall-clock time (ms) at
// which it handed the frame to the encoder. For each frame the browser presents, the probe
// draws only that corner (23·S × 3·S pixels, S = block size) to a small canvas, decodes the
// barcode and subtracts the burned time from the moment the frame is displayed. Same machine,
// same clock: nothing in any player's own statistics is trusted. No dependencies; works on any
// <video> (Lockstep, flv.js, mpegts.js, hls.js...).
//
//   import { startProbe } from '/probe.js';
//   const probe = startProbe(video, { onSample: (s) => console.log(s.latencyMs) });
//   probe.summary();  // { count, p50, p95, max, decodeFailures, framesSeen, ... }
//   probe.stop();
//
// Display time. Each sample's `displayMs` is `performance.timeOrigin +
// metadata.expectedDisplayTime` from requestVideoFrameCallback: the time at which the
// compositor expects the frame to be visible (the next vsync it is composited for). Not
// `metadata.presentationTime` (when the frame was handed to the compositor: earlier by up to
// a vsync, so it would flatter every player by part of a frame) and not `performance.now()` in
// the callback (when the callback happens to run: between the two, and subject to main-thread
// jitter). `expectedDisplayTime` is the closest the page can get to "the frame is on the glass";
// a real display adds its own scan-out/panel delay, which is the same for every player.
// It is Chromium's estimate, though, and on a starved machine it can fall before
// `presentationTime` (a composition deadline from a stale BeginFrame, or, for MediaStream video
// rendered without Chromium's render algorithm, simply the moment the frame was set): seen here
// with the CPU saturated, a frame "displayed" before its picture was made. A frame is never on
// screen before it is handed to the compositor, so the display time is the later of the two;
// `summary().clamped` counts the frames where that applied, and `summary().noEstimate` the
// frames whose expectedDisplayTime is within 1 ms of their presentationTime (no estimate at
// all: the display time of those is when the frame was set, a refresh or two early).
// performance.timeOrigin + a monotonic timestamp and Date.now() (the source's clock) can drift
// apart by a few ms on a long-lived page; `summary().clockSkewMs` reports the current gap
// (Date.now() − (timeOrigin + performance.now()), read to ~0.1 ms: `clockGapMs`) so it can be
// checked or applied (the sync benchmark applies it); the probe does not apply it.

const TWO32 = 2 ** 32;

/** CRC-8, polynomial 0x07, init 0, no reflection, no final XOR, over `bytes`. */
export function crc8(bytes) {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

/** Block size S for a frame `height` pixels tall: floor(H / 15), rounded down to even. */
export function blockSize(height) {
  const s = Math.floor(height / 15);
  return s - (s % 2);
}

/**
 * Date.now() − (performance.timeOrigin + performance.now()), ms, to a small fraction of a ms.
 * Date.now() counts whole ms, so one reading is up to 1 ms off; read at the instant it ticks
 * (a busy wait of at most ~1 ms), the gap is as fine as performance.now() (0.1 ms in a page).
 * Each poll reads performance.now() before and after Date.now(), so the tick is known to fall
 * between the start of the last poll that saw the old value and the end of the one that saw
 * the new. The scheduler or a cold JIT can widen that bracket by milliseconds, so of several
 * readings the one with the narrowest bracket is kept (its middle).
 */
export function clockGapMs() {
  let best = null;
  let bestWidth = Infinity;
  for (let i = 0; i < 7; i++) {
    let start = performance.now();
    const before = Date.now();
    const giveUp = start + 3;
    for (;;) {
      const pollStart = performance.now();
      const wall = Date.now();
      const end = performance.now();
      if (wall !== before) {
        if (end - start < bestWidth) {
          bestWidth = end - start;
          best = wall - (performance.timeOrigin + (start + end) / 2);
        }
        break;
      }
      if (end > giveUp) break;
      start = pollStart;
    }
  }
  return best ?? Date.now() - (performance.timeOrigin + performance.now());
}

/** The value congruent to `t32` modulo 2^32 nearest to `nowMs` (Unix ms). */
export function unwrapTime(t32, nowMs = Date.now()) {
  const base = nowMs - (nowMs % TWO32);
  let best = base + t32;
  for (const c of [best - TWO32, best + TWO32]) if (Math.abs(c - nowMs) < Math.abs(best - nowMs)) best = c;
  return best;
}

/**
 * Decodes the barcode of a frame of `width`×`height` pixels (the intrinsic size: it sets the
 * block size S). `imageData` is an ImageData (or {data, width}) holding at least the top-left
 * 23·S × 3·S pixels of the frame as RGBA, with the frame's (0,0) at its (0,0); its own `width`
 * is the row stride (default: `width`).
 * Returns `{ ok: true, t32, word, white, black }` (t32 = burned time mod 2^32) or
 * `{ ok: false, reason }` (reason: 'size', 'contrast' or 'crc').
 */
export function decodeBarcode(imageData, width, height) {
  const S = blockSize(height);
  if (S < 2 || width < 23 * S || height < 3 * S) return { ok: false, reason: 'size' };
  const data = imageData.data || imageData;
  const stride = imageData.width || width;
  const q = S / 4; // the central S/2 × S/2 square of a block: [x + S/4, x + 3S/4)
  const x0 = Math.floor(q);
  const x1 = Math.max(x0 + 1, Math.floor(3 * q));
  const luma = (row, i) => {
    const left = S / 2 + i * S;
    const top = S / 2 + row * S;
    let sum = 0;
    let n = 0;
    for (let y = top + x0; y < top + x1; y++) {
      let p = (y * stride + left + x0) * 4;
      for (let x = x0; x < x1; x++, p += 4) {
        sum += 0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2];
        n++;
      }
    }
    return sum / n;
  };
  const white = (luma(0, 0) + luma(1, 1)) / 2;
  const black = (luma(0, 1) + luma(1, 0)) / 2;
  if (white - black < 64) return { ok: false, reason: 'contrast', white, black };
  const threshold = (white + black) / 2;
  let word = 0;
  for (let row = 0; row < 2; row++) {
    for (let i = 2; i < 22; i++) word = word * 2 + (luma(row, i) > threshold ? 1 : 0);
  }
  const t32 = Math.floor(word / 256);
  const crc = word % 256;
  const bytes = [(t32 >>> 24) & 0xff, (t32 >>> 16) & 0xff, (t32 >>> 8) & 0xff, t32 & 0xff];
  if (crc8(bytes) !== crc) return { ok: false, reason: 'crc', white, black };
  return { ok: true, t32, word, white, black };
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function makeCanvas(w, h) {
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(w, h);
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

/**
 * Starts probing `video`: one sample per presented frame whose barcode decodes.
 * Options: `onSample(sample)`, `capacity` (ring size, default 18000 = 10 min at 30 fps).
 * A sample is `{ displayMs, burnedMs, latencyMs, mediaTime, presentedFrames }`.
 */
export function startProbe(video, { onSample, capacity = 18000 } = {}) {
  if (typeof video.requestVideoFrameCallback !== 'function') {
    throw new Error('probe: this browser lacks HTMLVideoElement.requestVideoFrameCallback');
  }
  const ring = new Array(capacity);
  let head = 0; // next write index
  let count = 0; // samples in the ring
  let total = 0; // samples ever recorded (since reset)
  let decodeFailures = 0;
  let framesSeen = 0;
  let clamped = 0; // frames whose expectedDisplayTime was before their presentationTime
  let noEstimate = 0; // frames whose expectedDisplayTime was within 1 ms of it
  let firstPresented = null; // metadata.presentedFrames at the first callback since reset
  let lastPresented = null;
  let firstFrame = null; // { displayMs, sinceOriginMs } of the first frame ever seen
  let lastFailure = null;
  let canvas = null;
  let ctx = null;
  let cw = 0;
  let ch = 0;
  let handle = null;
  let stopped = false;

  const onFrame = (now, metadata) => {
    if (stopped) return;
    handle = video.requestVideoFrameCallback(onFrame);
    const width = metadata.width || video.videoWidth;
    const height = metadata.height || video.videoHeight;
    framesSeen++;
    if (firstPresented === null) firstPresented = metadata.presentedFrames;
    lastPresented = metadata.presentedFrames;
    const sinceOriginMs = Math.max(metadata.expectedDisplayTime, metadata.presentationTime);
    if (metadata.expectedDisplayTime < metadata.presentationTime) clamped++;
    if (metadata.expectedDisplayTime - metadata.presentationTime < 1) noEstimate++;
    const displayMs = performance.timeOrigin + sinceOriginMs;
    if (!firstFrame) firstFrame = { displayMs, sinceOriginMs };
    const S = blockSize(height);
    const rw = Math.min(width, 23 * S);
    const rh = Math.min(height, 3 * S);
    let result;
    try {
      if (S < 2 || rw < 23 * S || rh < 3 * S) {
        result = { ok: false, reason: 'size' };
      } else {
        if (!ctx || cw !== rw || ch !== rh) {
          canvas = makeCanvas(rw, rh);
          ctx = canvas.getContext('2d', { willReadFrequently: true, alpha: false });
          cw = rw;
          ch = rh;
        }
        // Source rectangle in the video's intrinsic pixels: only the barcode corner is read.
        ctx.drawImage(video, 0, 0, rw, rh, 0, 0, rw, rh);
        result = decodeBarcode(ctx.getImageData(0, 0, rw, rh), width, height);
      }
    } catch (e) {
      result = { ok: false, reason: `draw: ${e && e.message ? e.message : e}` };
    }
    if (!result.ok) {
      decodeFailures++;
      lastFailure = result.reason;
      return;
    }
    const burnedMs = unwrapTime(result.t32, Date.now());
    const sample = {
      displayMs,
      burnedMs,
      latencyMs: displayMs - burnedMs,
      mediaTime: metadata.mediaTime,
      presentedFrames: metadata.presentedFrames,
    };
    ring[head] = sample;
    head = (head + 1) % capacity;
    if (count < capacity) count++;
    total++;
    if (onSample) {
      try { onSample(sample); } catch (e) { console.error('probe onSample:', e); }
    }
  };
  handle = video.requestVideoFrameCallback(onFrame);

  const samples = () => {
    const out = [];
    for (let k = count; k > 0; k--) out.push(ring[(head - k + capacity) % capacity]);
    return out;
  };

  return {
    /** The samples in the ring, oldest first. */
    samples,
    /** The latest sample, or null. */
    last: () => (count ? ring[(head - 1 + capacity) % capacity] : null),
    /** Figures over the samples in the ring (latencies in ms, nearest-rank percentiles). */
    summary() {
      const lat = samples().map((s) => s.latencyMs).sort((a, b) => a - b);
      const mean = lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null;
      return {
        count: lat.length,
        total,
        p50: percentile(lat, 50),
        p95: percentile(lat, 95),
        max: lat.length ? lat[lat.length - 1] : null,
        min: lat.length ? lat[0] : null,
        mean,
        decodeFailures,
        lastFailure,
        framesSeen,
        clamped,
        noEstimate,
        presentedFrames: firstPresented === null ? 0 : lastPresented - firstPresented + 1,
        firstFrameMs: firstFrame ? firstFrame.sinceOriginMs : null,
        clockSkewMs: clockGapMs(),
      };
    },
    /** Forgets the samples and counters (e.g. after a warm-up); keeps probing. */
    reset() {
      head = 0;
      count = 0;
      total = 0;
      decodeFailures = 0;
      framesSeen = 0;
      clamped = 0;
      noEstimate = 0;
      firstPresented = null;
      lastPresented = null;
      lastFailure = null;
    },
    /** Stops probing. */
    stop() {
      stopped = true;
      if (handle !== null && video.cancelVideoFrameCallback) video.cancelVideoFrameCallback(handle);
      handle = null;
    },
  };
}
