// Lockstep statistics dashboard (www/stats.html, served at /stats). No framework, no build
// step, no dependency.
//
// Fed by GET /api/stats/stream (Server-Sent Events, one JSON event a second: the /api/stats
// document plus per-channel chart history, see docs/RELAY.md). One card per channel with
// the source, the viewer summary, three small canvas charts of the last five minutes and
// one page (50) of the viewer list. Cards are built once and updated in place; only the
// shown page of viewers is ever in the DOM, so 1000 viewers cost what 50 do.
//
// The admin token: ?token=TOKEN in the page URL, else one typed into the form shown when
// the relay answers 401 (kept in sessionStorage). EventSource cannot send headers, so the
// token goes in the stream URL's query. Paging a channel past page 1 opens a second stream
// for that channel and page, which feeds that card's table only.
//
// Everything is written with textContent / attributes, never innerHTML.

import { formatBitrate, formatCodecs, formatFps, formatResolution, formatUptime } from './channels.js';

const PER_PAGE = 50;
/** Chart span, s (the relay keeps this much history). */
const SPAN_S = 300;
/** A larger gap between two points breaks the line (sampling had stopped). */
const GAP_S = 6;
const TOKEN_KEY = 'lockstep-admin-token';

const query = new URLSearchParams(location.search);
const only = query.get('channel');
let token = query.get('token') || sessionStorage.getItem(TOKEN_KEY) || '';

const $ = (id) => document.getElementById(id);
const statusEl = $('status');
const form = $('token-form');
const container = $('channels');
const totalsEl = $('totals');

/** `el(tag, {attr: value}, child...)`: a DOM element; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** Sets text only when it changed (no needless layout or mutation work). */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

const num = (v) => typeof v === 'number' && Number.isFinite(v);
const ms = (v) => (num(v) ? `${Math.round(v)} ms` : '–');
const int = (v) => (num(v) ? String(Math.round(v)) : '–');

/** "Chrome 131 · Linux" from a user agent string; the first 40 characters otherwise. */
export function shortAgent(ua) {
  if (!ua) return '–';
  const browsers = [[/Edg\/(\d+)/, 'Edge'], [/OPR\/(\d+)/, 'Opera'], [/Firefox\/(\d+)/, 'Firefox'],
    [/HeadlessChrome\/(\d+)/, 'Headless Chrome'], [/Chrom(?:e|ium)\/(\d+)/, 'Chrome'],
    [/Version\/(\d+)[^ ]* .*Safari\//, 'Safari']];
  const systems = [[/Android/, 'Android'], [/iPhone|iPad|iPod/, 'iOS'], [/Windows/, 'Windows'],
    [/Mac OS X/, 'macOS'], [/CrOS/, 'ChromeOS'], [/Linux/, 'Linux']];
  const b = browsers.find(([re]) => re.test(ua));
  const s = systems.find(([re]) => re.test(ua));
  if (!b) return ua.length > 40 ? `${ua.slice(0, 39)}…` : ua;
  const name = `${b[1]} ${ua.match(b[0])[1]}`;
  return s ? `${name} · ${s[1]}` : name;
}

// ---------------------------------------------------------------------------- charts

/** A small line chart on a <canvas>: time on x (the last SPAN_S seconds), 0..max on y. */
class Chart {
  /**
   * `series`: [{key, label, color, zeroIsUnset}]; `fmt` formats a value for the legend and
   * the scale.
   */
  constructor(title, series, fmt) {
    this.series = series;
    this.fmt = fmt;
    this.title = title;
    this.canvas = el('canvas', { role: 'img', 'aria-label': title, height: '80' });
    this.legend = el('figcaption', { 'aria-live': 'off' });
    this.values = series.map((s) => {
      const v = el('span', { class: 'chart-value' }, '–');
      this.legend.append(el('span', { class: 'chart-key', style: `--key:${s.color}` }, s.label, ' '), v, ' ');
      return v;
    });
    this.node = el('figure', { class: 'chart' }, el('div', { class: 'chart-title' }, title), this.canvas, this.legend);
  }

  /** Draws `points` (ascending t) with the right edge at `now` (relay uptime, s). */
  draw(points, now) {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr));
    const h = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext('2d');
    if (!g) return;
    const css = getComputedStyle(document.documentElement);
    g.clearRect(0, 0, w, h);
    const value = (p, s) => (num(p[s.key]) && !(s.zeroIsUnset && p[s.key] === 0) ? p[s.key] : null);
    let max = 0;
    for (const p of points) for (const s of this.series) if (value(p, s) !== null) max = Math.max(max, value(p, s));
    const top = niceCeil(max);
    const pad = 2 * dpr;
    const x = (t) => ((t - (now - SPAN_S)) / SPAN_S) * (w - 2 * pad) + pad;
    const y = (v) => h - pad - (v / top) * (h - 2 * pad - 12 * dpr);
    // The scale: a line at the top value, labelled.
    g.strokeStyle = css.getPropertyValue('--line') || '#ccc';
    g.lineWidth = dpr;
    g.beginPath();
    g.moveTo(pad, y(top)); g.lineTo(w - pad, y(top));
    g.moveTo(pad, y(0)); g.lineTo(w - pad, y(0));
    g.stroke();
    g.fillStyle = css.getPropertyValue('--muted') || '#888';
    g.font = `${10 * dpr}px system-ui, sans-serif`;
    g.textBaseline = 'bottom';
    g.fillText(this.fmt(top), pad, y(top) - dpr);
    g.lineWidth = 1.5 * dpr;
    g.lineJoin = 'round';
    for (const s of this.series) {
      g.strokeStyle = s.color;
      g.beginPath();
      let prev = null;
      for (const p of points) {
        const v = value(p, s);
        if (v === null) { prev = null; continue; }
        if (prev !== null && p.t - prev <= GAP_S) g.lineTo(x(p.t), y(v));
        else g.moveTo(x(p.t), y(v));
        prev = p.t;
      }
      g.stroke();
    }
    const last = points[points.length - 1];
    this.series.forEach((s, i) => {
      const v = last ? value(last, s) : null;
      setText(this.values[i], v === null ? '–' : this.fmt(v));
    });
    const label = `${this.title}, last 5 minutes: ${this.series.map((s, i) => `${s.label} ${this.values[i].textContent}`).join(', ')}`;
    if (c.getAttribute('aria-label') !== label) c.setAttribute('aria-label', label);
  }
}

/** 1, 2 or 5 times a power of ten, at least `v` (and at least 1). */
function niceCeil(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// ------------------------------------------------------------------------------ cards

const COLUMNS = [
  ['addr', 'Address'], ['agent', 'User agent'], ['connected', 'Connected for'], ['bandwidth', 'Bandwidth'],
  ['latency', 'Delay'], ['buffer', 'Buffer'], ['sync', 'Sync error'], ['dropped', 'Dropped'], ['mode', 'Mode'],
];

/** One channel's card: built once, then `update`d in place. */
class Card {
  constructor(name) {
    this.name = name;
    this.page = 1;
    this.pageStream = null;
    this.history = [];
    this.lastNow = 0;
    this.fields = {};
    const id = `ch-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const dl = (cls, rows) => el('dl', { class: cls, 'aria-live': 'off' }, ...rows.flatMap(([key, label]) => {
      this.fields[key] = el('dd', { 'data-f': key }, '–');
      return [el('dt', {}, label), this.fields[key]];
    }));
    this.badge = el('span', { class: 'badge' }, '');
    const heading = el('h2', { id }, name, ' ', this.badge, ' ',
      el('a', { href: `/?channel=${encodeURIComponent(name)}`, class: 'watch-link' }, 'watch'));
    const source = dl('stat-source', [['codecs', 'Codecs'], ['resolution', 'Resolution'], ['bitrate', 'Bitrate'],
      ['fps', 'FPS'], ['uptime', 'Uptime'], ['delay', 'Shared delay D'], ['publisher', 'Publisher']]);
    const summary = dl('stat-summary', [['viewers', 'Viewers'], ['kinds', 'WebSocket / HTTP-FLV'],
      ['latency', 'Delay min / avg / p95 / max'], ['buffer', 'Buffer avg'], ['bandwidth', 'Connection avg'],
      ['dropped', 'Dropped frames'], ['stalls', 'Stalls'], ['skipped', 'Frames skipped (relay)'],
      ['sync', 'Sync error max |e|'], ['modes', 'Modes']]);
    // Colours readable on the light and the dark background alike.
    this.charts = [
      new Chart('Viewers', [{ key: 'viewers', label: 'viewers', color: '#3b82f6' }], (v) => String(Math.round(v))),
      new Chart('Delay', [{ key: 'latency_p50', label: 'p50', color: '#3b82f6' },
        { key: 'latency_p95', label: 'p95', color: '#e8710a' },
        { key: 'delay_ms', label: 'D', color: '#8b8f97', zeroIsUnset: true }], (v) => `${Math.round(v)} ms`),
      new Chart('Source bitrate', [{ key: 'bitrate_kbps', label: 'bitrate', color: '#16a34a' }], formatBitrate),
    ];
    this.caption = el('caption', {}, 'Viewers');
    this.tbody = el('tbody', {});
    const table = el('table', { class: 'stat-viewers' }, this.caption,
      el('thead', {}, el('tr', {}, ...COLUMNS.map(([key, label]) => el('th', { scope: 'col', class: `c-${key}` }, label)))),
      this.tbody);
    this.prev = el('button', { type: 'button' }, '← Previous');
    this.next = el('button', { type: 'button' }, 'Next →');
    this.pageLabel = el('span', { 'aria-live': 'polite' }, '');
    this.prev.addEventListener('click', () => this.goto(this.page - 1));
    this.next.addEventListener('click', () => this.goto(this.page + 1));
    this.node = el('section', { class: 'stat-card', 'data-channel': name, 'aria-labelledby': id },
      heading,
      el('div', { class: 'stat-grid' }, source, summary),
      el('div', { class: 'stat-charts' }, ...this.charts.map((c) => c.node)),
      el('div', { class: 'stat-table' }, table),
      el('nav', { class: 'pager', 'aria-label': `${name} viewer pages` }, this.prev, this.pageLabel, this.next));
  }

  set(key, text) { setText(this.fields[key], text); }

  /** New figures from the main stream (`ch`: one channel of the event). */
  update(ch, points, full, now) {
    this.badge.className = ch.live ? 'badge live' : 'badge';
    setText(this.badge, ch.live ? 'live' : 'idle');
    this.set('codecs', formatCodecs(ch));
    this.set('resolution', formatResolution(ch));
    this.set('bitrate', formatBitrate(ch.bitrate_kbps));
    this.set('fps', formatFps(ch));
    this.set('uptime', ch.live ? formatUptime(ch.uptime_s) : '–');
    this.set('delay', ch.delay_ms ? `${ch.delay_ms} ms` : 'unset');
    this.set('publisher', ch.publisher || '–');
    const s = ch.summary;
    this.set('viewers', String(s.viewers));
    this.set('kinds', `${s.websocket} / ${s.http_flv}`);
    const l = s.latency_ms;
    this.set('latency', l ? `${l.min} / ${Math.round(l.avg)} / ${l.p95} / ${l.max} ms` : '–');
    this.set('buffer', ms(s.buffer_ms_avg));
    this.set('bandwidth', num(s.bandwidth_kbps_avg) ? formatBitrate(s.bandwidth_kbps_avg) : '–');
    this.set('dropped', String(s.dropped_frames ?? 0));
    this.set('stalls', String(s.stalls ?? 0));
    this.set('skipped', `${s.frames_skipped} (${s.skips} skips)`);
    this.set('sync', ms(s.sync_error_ms_max_abs));
    const m = s.modes || {};
    this.set('modes', s.reporting ? `MSE ${m.mse ?? 0}, WebCodecs ${m.webcodecs ?? 0}` : '–');
    // History: replaced on a stream's first event, appended after; the last SPAN_S kept.
    this.history = full ? points.slice() : this.history.concat(points);
    const from = now - SPAN_S;
    let drop = 0;
    while (drop < this.history.length && this.history[drop].t < from) drop++;
    if (drop) this.history.splice(0, drop);
    this.lastNow = now;
    for (const c of this.charts) c.draw(this.history, now);
    if (this.page === 1) this.table(ch.viewer_list);
  }

  /** Renders one page of viewers, reusing rows. */
  table(list) {
    const pages = Math.max(1, list.pages);
    if (this.page > pages) { this.goto(pages); return; }
    setText(this.caption, `Viewers ${list.total ? `${(list.page - 1) * list.per_page + 1}–${(list.page - 1) * list.per_page + list.viewers.length}` : '0'} of ${list.total}`);
    setText(this.pageLabel, `Page ${list.page} of ${pages}`);
    this.prev.disabled = list.page <= 1;
    this.next.disabled = list.page >= pages;
    const rows = this.tbody.rows;
    list.viewers.forEach((v, i) => {
      let row = rows[i];
      if (!row) {
        row = el('tr', {}, ...COLUMNS.map(([key]) => el('td', { 'data-col': key, class: `c-${key}` })));
        this.tbody.append(row);
      }
      row.dataset.viewerId = String(v.id);
      const cells = row.cells;
      setText(cells[0], v.addr);
      setText(cells[1], shortAgent(v.user_agent));
      if (cells[1].title !== v.user_agent) cells[1].title = v.user_agent || '';
      setText(cells[2], formatUptime(v.connected_s));
      setText(cells[3], num(v.bandwidth_kbps) ? formatBitrate(v.bandwidth_kbps) : '–');
      setText(cells[4], ms(v.latency_ms));
      setText(cells[5], ms(v.buffer_ms));
      setText(cells[6], ms(v.sync_error_ms));
      setText(cells[7], int(v.dropped_frames));
      setText(cells[8], v.mode || (v.kind === 'http-flv' ? 'HTTP-FLV' : '–'));
    });
    while (rows.length > list.viewers.length) this.tbody.deleteRow(rows.length - 1);
  }

  /** Shows page `n`: page 1 comes with the main stream, others from a stream of their own. */
  goto(n) {
    const page = Math.max(1, n);
    if (page === this.page) return;
    this.page = page;
    this.pageStream?.close();
    this.pageStream = null;
    setText(this.pageLabel, `Page ${page}…`);
    if (page === 1) return;
    this.pageStream = openStream({ channel: this.name, page }, (data) => {
      const ch = data.channels.find((c) => c.name === this.name);
      if (ch && this.page === page) this.table(ch.viewer_list);
    }, () => {});
  }

  close() { this.pageStream?.close(); }
}

// ----------------------------------------------------------------------------- stream

const cards = new Map();

/** An EventSource on /api/stats/stream with `params`; calls onData(json) per event. */
function openStream(params, onData, onError) {
  const q = new URLSearchParams({ per_page: String(PER_PAGE) });
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) q.set(k, String(v));
  if (token) q.set('token', token);
  const es = new EventSource(`/api/stats/stream?${q}`);
  es.onmessage = (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch { return; }
    onData(data);
  };
  es.addEventListener('api-error', (e) => { statusEl.textContent = `relay: ${e.data}`; });
  es.onerror = () => onError(es);
  return es;
}

function render(data) {
  statusEl.textContent = '';
  const t = data.totals;
  setText(totalsEl, `${t.channels} channel${t.channels === 1 ? '' : 's'} · ${t.publishers} live · `
    + `${t.viewers} viewer${t.viewers === 1 ? '' : 's'} · relay up ${formatUptime(data.uptime_s)} · `
    + `${data.subscribers} dashboard${data.subscribers === 1 ? '' : 's'} open`);
  const seen = new Set();
  data.channels.forEach((ch, i) => {
    seen.add(ch.name);
    let card = cards.get(ch.name);
    if (!card) {
      card = new Card(ch.name);
      cards.set(ch.name, card);
    }
    if (container.children[i] !== card.node) container.insertBefore(card.node, container.children[i] || null);
    card.update(ch, (data.history && data.history[ch.name]) || [], data.history_full, data.uptime_s);
  });
  for (const [name, card] of cards) {
    if (!seen.has(name)) { card.close(); card.node.remove(); cards.delete(name); }
  }
  if (data.channels.length === 0) setText(totalsEl, `${totalsEl.textContent} · no channel yet`);
}

let main = null;
let retry = null;

function connect() {
  clearTimeout(retry);
  main?.close();
  main = openStream({ channel: only }, (data) => {
    form.hidden = true;
    render(data);
  }, async (es) => {
    if (es.readyState !== EventSource.CLOSED) { statusEl.textContent = 'reconnecting…'; return; }
    // EventSource gives up on a non-200 answer without saying which: ask the JSON API.
    const q = new URLSearchParams({ per_page: '1' });
    if (only) q.set('channel', only);
    if (token) q.set('token', token);
    const status = await fetch(`/api/stats?${q}`, { cache: 'no-store' }).then((r) => r.status, () => 0);
    if (status === 401) {
      askToken(token ? 'That token was refused.' : '');
    } else {
      statusEl.textContent = status ? `statistics unavailable (HTTP ${status}), retrying…` : 'relay unreachable, retrying…';
      retry = setTimeout(connect, 3000);
    }
  });
}

function askToken(error) {
  main?.close();
  for (const card of cards.values()) card.close();
  statusEl.textContent = 'admin token required';
  setText($('token-error'), error);
  form.hidden = false;
  $('token-input').focus();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token-input').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  form.hidden = true;
  statusEl.textContent = 'connecting…';
  connect();
});

window.addEventListener('resize', () => {
  for (const card of cards.values()) for (const c of card.charts) c.draw(card.history, card.lastNow);
});

connect();
