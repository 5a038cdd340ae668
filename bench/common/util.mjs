// Small helpers the benchmark scripts share: child processes tracked and stopped, free
// loopback ports, polling with a deadline, JSON over HTTP with a timeout, a tool's version line.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

/** Polls `fn` every `everyMs` until it returns something truthy, or throws after `timeoutMs`. */
export async function waitFor(what, fn, timeoutMs, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${last.message})` : ''}`);
    await sleep(everyMs);
  }
}

/** GET `url` as JSON, failing on a non-2xx status or after `timeoutMs`. */
export async function getJson(url, timeoutMs = 3000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res.json();
}

/** The first non-empty line a command prints (for version strings in reports). */
export function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10000 });
  return ((r.stdout || '') + (r.stderr || '')).split('\n').find((l) => l.trim()) || '?';
}

/** Every child started by `startProcess` and still running (for last-resort cleanup). */
export const children = new Set();

export function startProcess(name, cmd, args, { cwd = ROOT, env = process.env, ready = null, readyMs = 15000 } = {}) {
  const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const append = (d) => { log = (log + d).slice(-8000); };
  proc.stdout.on('data', append);
  proc.stderr.on('data', append);
  const child = { name, proc, get log() { return log; } };
  children.add(child);
  proc.once('exit', () => children.delete(child));
  proc.on('error', (e) => append(`\nspawn error: ${e.message}`));
  if (!ready) return Promise.resolve(child);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} not ready within ${readyMs} ms:\n${log}`)), readyMs);
    const check = () => {
      if (ready.test(log)) { clearTimeout(t); proc.stdout.off('data', check); proc.stderr.off('data', check); resolve(child); }
    };
    proc.stdout.on('data', check);
    proc.stderr.on('data', check);
    proc.once('exit', (code, sig) => { clearTimeout(t); reject(new Error(`${name} exited (${code ?? sig}):\n${log}`)); });
  });
}

export async function stopChild(child, signal = 'SIGTERM', graceMs = 3000) {
  const { proc } = child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill(signal);
  if (!(await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]))) {
    proc.kill('SIGKILL');
    await Promise.race([exited, sleep(3000)]);
  }
}
