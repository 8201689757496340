/**
 * The sandbox's own main process: it starts the run's processes (the forwarder, the agent, the
 * file copies in and out, the checks after the agent) as the sandbox user, on the worker's word,
 * and streams their output back. The worker speaks to it over the container's attached stdin and
 * stdout, so no process is ever `docker exec`'d into a sandbox: an exec costs the engine ~60 ms of
 * CPU (dockerd, containerd, the shim and a runc of its own), about five of them ran for every run,
 * and a spawn here costs ~1 ms.
 *
 * It runs as root with only CAP_SETUID and CAP_SETGID (to become the sandbox user for what it
 * starts), so the agent cannot signal it (`kill -9 -1` spares it, as it spared the old holder);
 * what it starts has no capabilities at all and no-new-privileges. It reads nothing but the
 * worker's frames, and runs with the layer's Node, whatever the environment image has.
 *
 * Frames, both ways: type (1 byte), process id (u32 BE), payload length (u32 BE), payload.
 *   worker → sandbox  S spawn {argv, env, cwd, uid, gid, stdin}   I stdin bytes   E end stdin
 *                     D detach (drop its output from now on)   K kill {uid}: every process of uid
 *                     (answered by X, 0 when done)
 *   sandbox → worker  O stdout bytes   R stderr bytes   X exit (i32 BE: the code, 128+n for signal n)
 * Its own failures go to its stderr (the container's), which the worker keeps for its errors.
 */

export const FRAME = {
  spawn: 0x53,
  input: 0x49,
  endInput: 0x45,
  detach: 0x44,
  kill: 0x4b,
  stdout: 0x4f,
  stderr: 0x52,
  exit: 0x58,
} as const;
export const FRAME_HEADER_BYTES = 9;
/** A frame's payload is cut to this; bigger input goes in several frames. */
export const MAX_FRAME_PAYLOAD = 1024 * 1024;

export interface SpawnRequest {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  uid: number;
  gid: number;
  /** Whether stdin is a pipe the worker writes to (else /dev/null). */
  stdin: boolean;
}

export function frame(type: number, id: number, payload?: Buffer): Buffer {
  const body = payload ?? Buffer.alloc(0);
  const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  head[0] = type;
  head.writeUInt32BE(id, 1);
  head.writeUInt32BE(body.length, 5);
  return body.length === 0 ? head : Buffer.concat([head, body]);
}

/**
 * Splits a byte stream into frames. `onFrame` returns false to ask for the source to be paused
 * (its caller resumes it); partial frames are held until the rest arrives.
 */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (type: number, id: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    while (this.pending.length - at >= FRAME_HEADER_BYTES) {
      const size = this.pending.readUInt32BE(at + 5);
      if (this.pending.length - at - FRAME_HEADER_BYTES < size) break;
      const type = this.pending[at] as number;
      const id = this.pending.readUInt32BE(at + 1);
      const start = at + FRAME_HEADER_BYTES;
      this.onFrame(type, id, this.pending.subarray(start, start + size));
      at = start + size;
    }
    this.pending = this.pending.subarray(at);
  }
}

/**
 * The supervisor's source, run with `node -e` as the container's command (plain CommonJS: no
 * file of ours needs to be in the image). Its frame handling mirrors frame() and FrameReader.
 */
export const SUPERVISOR_SOURCE = String.raw`'use strict';
const { spawn } = require('node:child_process');
const net = require('node:net');
const { constants } = require('node:os');
const T = { S: 0x53, I: 0x49, E: 0x45, D: 0x44, K: 0x4b, O: 0x4f, R: 0x52, X: 0x58 };
// After the process exits, its output is waited for this long (a child it left may hold it open).
const LINGER_MS = 2000;
const out = new net.Socket({ fd: 1, readable: false, writable: true });
const procs = new Map();
let blocked = false;
function send(type, id, body) {
  const head = Buffer.allocUnsafe(9);
  head[0] = type;
  head.writeUInt32BE(id, 1);
  head.writeUInt32BE(body.length, 5);
  const ok = out.write(body.length === 0 ? head : Buffer.concat([head, body]));
  if (ok || blocked) return;
  // The worker reads slower than the processes write: they wait, and so does their output.
  blocked = true;
  for (const p of procs.values()) p.pause();
  out.once('drain', () => {
    blocked = false;
    for (const p of procs.values()) p.resume();
  });
}
const base = Object.assign({}, process.env);
delete base.HOME;
function start(id, req) {
  const env = Object.assign({ HOME: '/' }, base, req.env);
  let child;
  let code = null;
  let finished = false;
  let linger;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(linger);
    procs.delete(id);
    exitFrame(id, code === null ? -1 : code);
  };
  const refuse = (err) => {
    if (finished) return;
    const word = err.code || err.message;
    send(T.R, id, Buffer.from('jetty-sandbox: cannot start ' + req.argv[0] + ': ' + word + '\n'));
    code = err.code === 'ENOENT' ? 127 : 126;
    finish();
  };
  try {
    child = spawn(req.argv[0], req.argv.slice(1), {
      cwd: req.cwd, env, uid: req.uid, gid: req.gid,
      stdio: [req.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    refuse(err);
    return;
  }
  const p = {
    child, detached: false,
    pause() { child.stdout.pause(); child.stderr.pause(); },
    resume() { child.stdout.resume(); child.stderr.resume(); },
  };
  procs.set(id, p);
  if (blocked) p.pause();
  child.stdout.on('data', (c) => { if (!p.detached) send(T.O, id, c); });
  child.stderr.on('data', (c) => { if (!p.detached) send(T.R, id, c); });
  if (child.stdin) child.stdin.on('error', () => {});
  child.on('error', refuse);
  child.on('exit', (c, signal) => {
    code = c !== null ? c : 128 + (constants.signals[signal] || 0);
    linger = setTimeout(() => { child.stdout.destroy(); child.stderr.destroy(); finish(); }, LINGER_MS);
  });
  child.on('close', () => { if (code !== null) finish(); });
}
function exitFrame(id, code) {
  const body = Buffer.allocUnsafe(4);
  body.writeInt32BE(code, 0);
  send(T.X, id, body);
}
// kill(-1) as the sandbox user, from here: no process to start, so it works at the pids limit too.
// Only the effective uid changes (and back): kill(-1) spares PID 1 and the caller.
function killAll(id, req) {
  let code = 0;
  try {
    process.seteuid(req.uid);
    try {
      for (let i = 0; i < 2; i++) {
        try { process.kill(-1, 'SIGKILL'); } catch (err) { if (err.code !== 'ESRCH') throw err; }
      }
    } finally {
      process.seteuid(0);
    }
  } catch (err) {
    process.stderr.write('jetty-supervisor: cannot kill the processes of ' + req.uid + ': ' + (err.code || err.message) + '\n');
    code = 1;
  }
  exitFrame(id, code);
}
function onFrame(type, id, body) {
  if (type === T.K) {
    let req;
    try { req = JSON.parse(body.toString('utf8')); } catch { req = null; }
    if (req && Number.isInteger(req.uid) && req.uid > 0) killAll(id, req);
    else exitFrame(id, 2);
    return;
  }
  if (type === T.S) {
    let req;
    try { req = JSON.parse(body.toString('utf8')); } catch { req = null; }
    if (!req || !Array.isArray(req.argv) || req.argv.length === 0) {
      process.stderr.write('jetty-supervisor: a bad spawn request for ' + id + '\n');
      return;
    }
    start(id, req);
    return;
  }
  const p = procs.get(id);
  if (!p) return;
  if (type === T.D) p.detached = true;
  else if (type === T.E) { if (p.child.stdin) p.child.stdin.end(); }
  else if (type === T.I && p.child.stdin && !p.child.stdin.writableEnded) {
    if (!p.child.stdin.write(Buffer.from(body))) {
      process.stdin.pause();
      const go = () => { p.child.stdin.off('drain', go); p.child.stdin.off('close', go); process.stdin.resume(); };
      p.child.stdin.on('drain', go);
      p.child.stdin.on('close', go);
    }
  }
}
let pending = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  let at = 0;
  while (pending.length - at >= 9) {
    const size = pending.readUInt32BE(at + 5);
    if (pending.length - at - 9 < size) break;
    onFrame(pending[at], pending.readUInt32BE(at + 1), pending.subarray(at + 9, at + 9 + size));
    at += 9 + size;
  }
  pending = pending.subarray(at);
});
// The worker went away (its attach closed our stdin only when it asked to): the sandbox stays
// until it is removed, like any other.
process.stdin.on('end', () => {});
out.on('error', () => {});
setInterval(() => {}, 1 << 30);
`;
