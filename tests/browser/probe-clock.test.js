// The probe's page-clock gap (www/probe.js `clockGapMs`), run under node: it is read at the
// instant Date.now() ticks, so two readings agree to well under the 1 ms Date.now() counts in
// (one plain reading each would differ by up to 1 ms).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { clockGapMs } from '../../www/probe.js';

test('the page clock gap is read to a fraction of a ms', () => {
  const gaps = Array.from({ length: 8 }, () => clockGapMs());
  const spread = Math.max(...gaps) - Math.min(...gaps);
  assert.ok(spread < 0.3, `gaps ${gaps.map((g) => g.toFixed(3)).join(', ')}`);
  assert.ok(Math.abs(gaps[0]) < 50, `gap ${gaps[0]} ms`);
});
