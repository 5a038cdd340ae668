// lockstep-player: the Lockstep live video player. The work (WebCodecs decode and frame
// scheduling, or FLV to fMP4 for Media Source Extensions, latency control, clock sync) happens
// in WebAssembly (Rust); this file
// gives it a JavaScript face: the LockstepPlayer class (an EventTarget) and the
// <lockstep-player> custom element.
import init, { PlayerCore } from './wasm/lockstep_player.js';

let loading = null;

/** Loads the WebAssembly module once. Optional: the player calls it itself. */
export function load(wasmUrl) {
  if (!loading) loading = init(wasmUrl ? { module_or_path: wasmUrl } : undefined);
  return loading;
}

/**
 * A live player on a <video> element.
 *
 *   const player = new LockstepPlayer(video, { url: 'ws://127.0.0.1:8080', channel: 'live' });
 *   player.addEventListener('state', (e) => console.log(e.detail));
 *   player.addEventListener('stats', (e) => console.log(e.detail.latencyMs));
 *   player.destroy();
 *
 * Events: state (connecting, waiting, playing, stalled, reconnecting, ended, error),
 * stats (once a second), error, ended, skipped, discontinuity, fallback (WebCodecs to MSE).
 */
export class LockstepPlayer extends EventTarget {
  #core = null;
  #destroyed = false;
  #failed = null;

  constructor(video, options = {}) {
    super();
    if (!(video instanceof HTMLVideoElement)) throw new TypeError('LockstepPlayer needs a <video> element');
    this.video = video;
    /** Resolves once the player runs (or has failed: see `state`). */
    this.ready = load()
      .then(() => {
        if (this.#destroyed) return;
        this.#core = new PlayerCore(video, options, (type, detail) => {
          this.dispatchEvent(new CustomEvent(type, { detail }));
        });
      })
      .catch((e) => {
        this.#failed = String(e && e.message ? e.message : e);
        this.dispatchEvent(new CustomEvent('error', { detail: this.#failed }));
        this.dispatchEvent(new CustomEvent('state', { detail: 'error' }));
      });
  }

  /** connecting, waiting, playing, stalled, reconnecting, ended, error or destroyed. */
  get state() {
    if (this.#destroyed) return 'destroyed';
    if (this.#failed) return 'error';
    return this.#core ? this.#core.state : 'connecting';
  }

  /** The latest statistics: latencyMs, bufferMs, playbackRate, droppedFrames, ... */
  get stats() {
    return this.#core ? this.#core.stats() : null;
  }

  /** Target latency in ms, used when the relay announces no shared delay. */
  setTargetLatency(ms) {
    if (this.#core) this.#core.setTargetLatency(ms);
  }

  /** Stops and releases everything: socket, MediaSource, object URL, timers, listeners. */
  destroy() {
    if (this.#destroyed) return;
    this.#destroyed = true;
    if (this.#core) {
      this.#core.destroy();
      this.#core.free();
      this.#core = null;
    }
  }
}

const template = document.createElement('template');
template.innerHTML = `
<style>
  :host { display: inline-block; position: relative; background: #000; width: 640px; aspect-ratio: 16 / 9; }
  video { width: 100%; height: 100%; display: block; object-fit: contain; }
  .controls { position: absolute; left: 8px; bottom: 8px; display: flex; gap: 6px; align-items: center;
    background: rgba(0,0,0,.55); border-radius: 6px; padding: 4px 8px; opacity: .85; }
  :host(:hover) .controls, .controls:focus-within { opacity: 1; }
  button { font: 14px system-ui, sans-serif; color: #fff; background: none; border: 1px solid #fff8;
    border-radius: 4px; padding: 2px 8px; cursor: pointer; }
  button:focus-visible, input:focus-visible { outline: 2px solid #4af; outline-offset: 2px; }
  input { width: 90px; }
</style>
<video part="video" playsinline muted autoplay></video>
<div class="controls" part="controls">
  <button type="button" class="mute" aria-pressed="true">Unmute</button>
  <input class="volume" type="range" min="0" max="1" step="0.05" value="1" aria-label="Volume">
</div>`;

/**
 * <lockstep-player src="ws://HOST:PORT/ws/NAME" target-latency="150"></lockstep-player>
 * Makes its own <video>; the only control is volume (mute/unmute and a slider; M toggles
 * mute when the player has focus). The `player` property is the LockstepPlayer; its events
 * are re-dispatched on the element.
 */
export class LockstepPlayerElement extends HTMLElement {
  static observedAttributes = ['src', 'target-latency', 'mode'];
  #player = null;

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.appendChild(template.content.cloneNode(true));
    this.video = root.querySelector('video');
    const mute = root.querySelector('.mute');
    const volume = root.querySelector('.volume');
    const sync = () => {
      mute.textContent = this.video.muted ? 'Unmute' : 'Mute';
      mute.setAttribute('aria-pressed', String(this.video.muted));
      volume.value = String(this.video.muted ? 0 : this.video.volume);
    };
    mute.addEventListener('click', () => { this.video.muted = !this.video.muted; sync(); });
    volume.addEventListener('input', () => {
      this.video.volume = Number(volume.value);
      this.video.muted = this.video.volume === 0;
      sync();
    });
    this.addEventListener('keydown', (e) => {
      if (e.key === 'm' || e.key === 'M') { this.video.muted = !this.video.muted; sync(); }
    });
    this.video.addEventListener('volumechange', sync);
    if (!this.hasAttribute('tabindex')) this.tabIndex = 0;
  }

  get player() { return this.#player; }

  connectedCallback() { this.#start(); }
  disconnectedCallback() { this.#stop(); }
  attributeChangedCallback() { if (this.isConnected) this.#start(); }

  #stop() {
    if (this.#player) { this.#player.destroy(); this.#player = null; }
  }

  #start() {
    this.#stop();
    const src = this.getAttribute('src');
    if (!src) return;
    const options = { url: src };
    const target = Number(this.getAttribute('target-latency'));
    if (target > 0) options.targetLatencyMs = target;
    const mode = this.getAttribute('mode');
    if (mode) options.mode = mode;
    const player = new LockstepPlayer(this.video, options);
    for (const type of ['state', 'stats', 'error', 'ended', 'skipped', 'discontinuity', 'fallback']) {
      player.addEventListener(type, (e) => this.dispatchEvent(new CustomEvent(type, { detail: e.detail })));
    }
    this.#player = player;
  }
}

if (!customElements.get('lockstep-player')) customElements.define('lockstep-player', LockstepPlayerElement);
