// Lockstep channel list: polls GET /api/channels and renders live channels and one
// channel's details. No framework, no build step; an ES module reusable by any page:
//
//   import { watchChannels, renderChannelList } from './channels.js';
//   const stop = watchChannels(list => renderChannelList(el, list));
//
// Everything is written with textContent / attributes, never innerHTML, so nothing a
// publisher sends (codec strings, names) can inject markup.

/** Polling period of watchChannels, ms. */
export const POLL_MS = 2000;

/** Every channel the relay knows (live or idle), as GET /api/channels returns them. */
export async function fetchChannels(base = '') {
  const resp = await fetch(`${base}/api/channels`, { cache: 'no-store' });
  if (!resp.ok) throw new Error(`/api/channels: HTTP ${resp.status}`);
  const body = await resp.json();
  return Array.isArray(body.channels) ? body.channels : [];
}

/**
 * Calls onUpdate(channels) now and every `interval` ms, onError(err) when a poll fails.
 * Returns a function that stops polling.
 */
export function watchChannels(onUpdate, { interval = POLL_MS, onError = () => {}, base = '' } = {}) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      const list = await fetchChannels(base);
      if (!stopped) onUpdate(list);
    } catch (err) {
      if (!stopped) onError(err);
    }
    if (!stopped) timer = setTimeout(tick, interval);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Absolute URLs of a channel on this relay (the API gives paths). */
export function channelUrls(channel, loc = window.location) {
  const name = encodeURIComponent(channel.name);
  const wsScheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const urls = channel.urls || {};
  return {
    ws: `${wsScheme}//${loc.host}${urls.ws || `/ws/${name}`}`,
    flv: `${loc.protocol}//${loc.host}${urls.flv || `/live/${name}.flv`}`,
    page: urls.page || `/?channel=${name}`,
  };
}

export function formatUptime(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = n => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export function formatBitrate(kbps) {
  const k = Number(kbps) || 0;
  return k >= 1000 ? `${(k / 1000).toFixed(2)} Mbit/s` : `${Math.round(k)} kbit/s`;
}

export function formatResolution(c) {
  return c.width && c.height ? `${c.width}×${c.height}` : '–';
}

export function formatCodecs(c) {
  return [c.video_codec, c.audio_codec].filter(Boolean).join(', ') || '–';
}

export function formatFps(c) {
  const fps = Number(c.fps) || Number(c.frame_rate) || 0;
  return fps ? fps.toFixed(fps % 1 ? 1 : 0) : '–';
}

/** `el(tag, {attr: value}, child...)`: a DOM element; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function urlLine(label, url) {
  return el('div', { class: 'url' }, el('span', { class: 'label' }, label), el('code', {}, url));
}

/** Renders the live channels of `channels` as a table into `container`. */
export function renderChannelList(container, channels) {
  const live = channels.filter(c => c.live);
  const idle = channels.length - live.length;
  container.replaceChildren();
  if (live.length === 0) {
    container.append(
      el('p', { class: 'empty' }, 'No live channel right now. Publish with OBS to ',
        el('code', {}, 'rtmp://HOST:1935/live'), ', stream key ', el('code', {}, 'NAME'), '.'),
    );
  } else {
    const head = el('tr', {}, ...['Channel', 'Codecs', 'Resolution', 'Bitrate', 'FPS', 'Viewers', 'Uptime', 'URLs']
      .map(h => el('th', {}, h)));
    const rows = live.map(c => {
      const urls = channelUrls(c);
      return el('tr', {},
        el('td', {}, el('a', { href: urls.page }, c.name)),
        el('td', { class: 'codecs' }, formatCodecs(c)),
        el('td', {}, formatResolution(c)),
        el('td', { class: 'num' }, formatBitrate(c.bitrate_kbps)),
        el('td', { class: 'num' }, formatFps(c)),
        el('td', { class: 'num' }, c.viewers ?? 0),
        el('td', { class: 'num' }, formatUptime(c.uptime_s)),
        el('td', { class: 'urls' }, urlLine('WS', urls.ws), urlLine('FLV', urls.flv)));
    });
    container.append(el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows)));
  }
  if (idle > 0) {
    container.append(el('p', { class: 'note' }, `${idle} idle channel${idle > 1 ? 's' : ''} waiting for a publisher.`));
  }
}

/** Renders one channel's details into `container`; `channel` may be undefined (unknown). */
export function renderChannelDetails(container, name, channel) {
  container.replaceChildren();
  if (!channel) {
    container.append(el('p', { class: 'empty' }, `No channel named “${name}” yet; this page updates when it goes live.`));
    return;
  }
  const urls = channelUrls(channel);
  const rows = [
    ['Status', channel.live ? 'live' : 'waiting for a publisher'],
    ['Codecs', formatCodecs(channel)],
    ['Resolution', formatResolution(channel)],
    ['Bitrate', formatBitrate(channel.bitrate_kbps)],
    ['FPS', formatFps(channel)],
    ['Viewers', channel.viewers ?? 0],
    ['Uptime', channel.live ? formatUptime(channel.uptime_s) : '–'],
    ['Audio', channel.audio_sample_rate ? `${channel.audio_sample_rate} Hz, ${channel.audio_channels ?? '?'} ch` : '–'],
    ['GOP cache', `${channel.gop_frames ?? 0} frames, ${Math.round((channel.gop_bytes ?? 0) / 1024)} KiB`],
  ];
  container.append(
    el('dl', {}, ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    urlLine('WebSocket', urls.ws),
    urlLine('HTTP-FLV', urls.flv),
  );
}
