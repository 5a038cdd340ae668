// Types for lockstep-player.

export type PlayerState =
  | 'connecting' | 'waiting' | 'playing' | 'stalled' | 'reconnecting' | 'ended' | 'error' | 'destroyed';

export interface PlayerOptions {
  /** ws://HOST:PORT/ws/NAME, or ws://HOST:PORT with `channel`. Default: this page's host. */
  url?: string;
  /** Channel name (with a bare `url`, or alone for this page's host). */
  channel?: string;
  /** Target latency in ms when the relay announces no shared delay. Default 150. */
  targetLatencyMs?: number;
  /** Follow the relay's shared delay (synchronized playout across viewers). Default true. */
  sync?: boolean;
  /** Start muted (autoplay policies require it). Default true. */
  muted?: boolean;
  /** Reconnect with backoff when the connection drops. Default true. */
  reconnect?: boolean;
  /**
   * Presentation path. Default 'auto': WebCodecs (VideoDecoder + MediaStreamTrackGenerator,
   * each frame presented at ingest + D) where the browser has it and accepts the codec, else
   * MSE. A WebCodecs failure falls back to MSE without a reload ('fallback' event).
   */
  mode?: 'auto' | 'mse' | 'webcodecs';
  /** For tests only. */
  debug?: {
    /** WebCodecs: after N decoded video frames every output counts as a decoder error, which
     * ends in the fallback to MSE. */
    failDecoderAfterFrames?: number;
  };
}

export interface PlayerStats {
  state: PlayerState;
  mode: 'mse' | 'webcodecs';
  channel: string;
  /** Relay-clock now minus relay ingest time of the frame on screen. */
  latencyMs: number | null;
  targetLatencyMs: number;
  syncErrorMs: number | null;
  bufferMs: number;
  playbackRate: number;
  decodedFrames: number;
  droppedFrames: number;
  bytesReceived: number;
  stalls: number;
  seeks: number;
  jitterMs: number;
  /** 95th percentile of how late frames arrive (relay ingest to arrival), ms. */
  arrivalP95Ms: number | null;
  /** The lowest latency this viewer can hold without stalling, ms (reported to the relay). */
  requiredLatencyMs: number;
  /** The channel's shared delay D as the relay last announced it, ms; null before one. */
  sharedDelayMs: number | null;
  clockOffsetMs: number | null;
  rttMs: number | null;
  /** Clock-sync pings go over their own connection to the relay (`/clock`), not the media one. */
  clockConnection: boolean;
  startupMs: number | null;
  epoch: number;
  skippedByRelay: number;
  videoFramesReceived: number;
  audioFramesReceived: number;
  tracks: string[];
  error?: string;
  managedMediaSource?: boolean;
  quotaErrors?: number;
  appendQueue?: number;
  /** Times the player fell back from WebCodecs to MSE, and why (the last time). */
  fallbacks: number;
  fallbackReason?: string;
  // WebCodecs mode only:
  /** Frames written to the generator at their due time. */
  framesPresented?: number;
  /** Decoded frames dropped (closed): they would have reached the screen when the next frame
   *  is due there, or a newer frame was ready at the same time. */
  framesDroppedLate?: number;
  /** Encoded frames skipped before decoding (waiting for a keyframe, back-pressure). */
  chunksSkipped?: number;
  decodeQueueSize?: number;
  /** VideoFrames decoded and not yet presented or closed. */
  openFrames?: number;
  /** 95th percentile of decode time (chunk submitted to frame out), ms. */
  decodeP95Ms?: number | null;
  /** Smoothed lateness of presented frames: the refresh each lands on minus its due time
   *  (once the refresh grid is known), else its write time minus its planned write time, ms. */
  presentErrorMs?: number | null;
  /** Median time from writing a frame to its expected display, ms. */
  displayDelayMs?: number | null;
  /** The display's refresh period, ms (from requestAnimationFrame). */
  refreshPeriodMs?: number | null;
  /** How early before its refresh's write deadline a frame is written, ms (learnt). */
  writeMarginMs?: number;
  /** Refreshes from the first refresh after a write to the frame's display (learnt). */
  refreshDepth?: number;
  /** Frames that landed off the refresh they were written for. */
  refreshMisses?: number;
  /** When audio is heard minus when the picture of the same instant is seen, ms (> 0: audio
   * later): the audio lag plus the audio's start error (audio follows the video's landing). */
  avOffsetMs?: number | null;
  /** How much later than its picture audio is played because it cannot be on time, ms (at most 20). */
  audioLagMs?: number;
  /** 95th percentile of how late audio frames arrive (relay ingest to arrival), ms. */
  audioArrivalP95Ms?: number | null;
  /** 95th percentile of the audio decode time (chunk submitted to data out), ms. */
  audioDecodeP95Ms?: number | null;
  audioContext?: 'running' | 'suspended' | 'closed';
  audioScheduled?: number;
  audioDropped?: number;
  decoderFailures?: number;
}

export interface PlayerEventMap {
  state: CustomEvent<PlayerState>;
  stats: CustomEvent<PlayerStats>;
  error: CustomEvent<string>;
  ended: CustomEvent<string>;
  skipped: CustomEvent<number>;
  discontinuity: CustomEvent<number>;
  /** WebCodecs gave up (the reason); the player continues through MSE. */
  fallback: CustomEvent<string>;
}

/** Loads the WebAssembly module (optional: players load it themselves). */
export function load(wasmUrl?: string | URL): Promise<unknown>;

export class LockstepPlayer extends EventTarget {
  constructor(video: HTMLVideoElement, options?: PlayerOptions);
  readonly video: HTMLVideoElement;
  /** Resolves once the player runs (or has failed: see `state`). */
  readonly ready: Promise<void>;
  readonly state: PlayerState;
  readonly stats: PlayerStats | null;
  setTargetLatency(ms: number): void;
  destroy(): void;
  addEventListener<K extends keyof PlayerEventMap>(
    type: K, listener: (ev: PlayerEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
}

export class LockstepPlayerElement extends HTMLElement {
  readonly player: LockstepPlayer | null;
  readonly video: HTMLVideoElement;
}

declare global {
  interface HTMLElementTagNameMap {
    'lockstep-player': LockstepPlayerElement;
  }
}
