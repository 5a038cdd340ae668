// The sync-skew arithmetic, shared by the benchmark (bench/sync/run.mjs) and the browser test
// (tests/browser/sync.test.js). Pure functions, no I/O.

/** Nearest-rank percentile of an unsorted array (null when empty). */
export function percentile(xs, p) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n ? (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : null;
}

/** { p50, p95, max, mean, n } of an array of numbers. */
export function dist(xs) {
  return { p50: percentile(xs, 50), p95: percentile(xs, 95), max: xs.length ? Math.max(...xs) : null, mean: mean(xs), n: xs.length };
}

/**
 * Skew over a grid of instants (DESIGN.md §3: at the same wall-clock instant each viewer's
 * displayed frame; skew = max − min of their burned times).
 *
 * `viewers`: [{ samples: [{ displayMs, burnedMs }] }], each viewer's probe samples sorted by
 * displayMs, all on one clock. For each T from `fromMs` to `toMs` every `stepMs`, a viewer's
 * displayed burned time is that of its last sample with displayMs ≤ T (what is on its screen at
 * T); instants at which some viewer has shown nothing yet are skipped.
 * Returns { instants, skews: [ms per instant], offsets: [[burned − median of the instant, ms]
 * per viewer] }.
 */
export function skewOverGrid(viewers, fromMs, toMs, stepMs = 100) {
  const idx = viewers.map(() => -1);
  const skews = [];
  const offsets = viewers.map(() => []);
  let instants = 0;
  for (let T = fromMs; T <= toMs; T += stepMs) {
    const burned = viewers.map((v, i) => {
      const s = v.samples;
      while (idx[i] + 1 < s.length && s[idx[i] + 1].displayMs <= T) idx[i]++;
      return idx[i] >= 0 ? s[idx[i]].burnedMs : null;
    });
    if (burned.some((b) => b === null)) continue;
    instants++;
    const m = median(burned);
    skews.push(Math.max(...burned) - Math.min(...burned));
    burned.forEach((b, i) => offsets[i].push(b - m));
  }
  return { instants, skews, offsets };
}

/**
 * Per frame, how far apart the viewers present it (issue #9's measure: "the wall-clock times at
 * which each viewer presents the same frame differ by ≤ 17 ms at p95"). `viewers` as for
 * [`skewOverGrid`]; a frame is identified by its burned time and its presentation time on a
 * viewer is the first sample with that burned time. Only frames that every viewer presented
 * (and whose barcode it read) between `fromMs` and `toMs` count. Returns { frames, spreads:
 * [max − min presentation time, ms, per frame] }.
 */
export function presentationSpread(viewers, fromMs, toMs) {
  const firsts = viewers.map((v) => {
    const m = new Map();
    for (const s of v.samples) {
      if (s.displayMs < fromMs || s.displayMs > toMs) continue;
      if (!m.has(s.burnedMs)) m.set(s.burnedMs, s.displayMs);
    }
    return m;
  });
  const spreads = [];
  if (!firsts.length) return { frames: 0, spreads };
  for (const [burned, at0] of firsts[0]) {
    const ats = [at0];
    for (const m of firsts.slice(1)) {
      const at = m.get(burned);
      if (at === undefined) break;
      ats.push(at);
    }
    if (ats.length === firsts.length) spreads.push(Math.max(...ats) - Math.min(...ats));
  }
  return { frames: spreads.length, spreads };
}
