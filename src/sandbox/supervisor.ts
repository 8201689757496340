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
 *                     (answered by X, 0 when done)   F forward {port, socket}: the gateway forwarder
 *                     (below), as a process of its own: O "ready" once it listens, R its complaints,
 *                     E stops it (X 0)
 *   sandbox → worker  O stdout bytes   R stderr bytes   X exit (i32 BE: the code, 128+n for signal n)
 * Its own failures go to its stderr (the container's), which the worker logs (at most 4 KiB a sandbox).
 */

import { AGENT_MOUNT } from './agent-volume.js';

export const FRAME = {
  spawn: 0x53,
  input: 0x49,
  endInput: 0x45,
  detach: 0x44,
  kill: 0x4b,
  forward: 0x46,
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
 * The supervisor's source, run with `node -e` as the container's command (plain CommonJS: no
 * file of ours needs to be in the image). Its frame handling mirrors frame() and FrameSplitter.
 */
export const SUPERVISOR_SOURCE = String.raw`'use strict'; // jetty-sandbox-supervisor
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const { constants } = require('node:os');
const BUSYBOX = '${AGENT_MOUNT}/bin/busybox';
const T = { S: 0x53, I: 0x49, E: 0x45, D: 0x44, K: 0x4b, F: 0x46, O: 0x4f, R: 0x52, X: 0x58 };
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
// A process's stdin, stdout and stderr are FIFOs, as an exec's were: Node's own pipes are
// sockets, which cannot be opened by name (/dev/stdout, /dev/stderr, /proc/<pid>/fd/1: ENXIO),
// and scripts do open them. Made in a directory only root can reach, opened at once and unlinked;
// readable and writable by anyone, so that the process can open them again by those names.
const IO_DIR = '/dev/jetty-io';
let fifoDir = false;
try { fs.mkdirSync(IO_DIR, { mode: 0o700 }); fifoDir = true; } catch (err) { fifoDir = err.code === 'EEXIST'; }
let fifoSeq = 0;
function fifos(withStdin) {
  if (!fifoDir) return null;
  const names = withStdin ? ['out', 'err', 'in'] : ['out', 'err'];
  const paths = names.map((n) => IO_DIR + '/' + ++fifoSeq + '.' + n);
  const made = spawnSync(BUSYBOX, ['mkfifo', '-m', '0666'].concat(paths));
  if (made.status !== 0) return null;
  const C = fs.constants;
  const ends = paths.map((path, i) => {
    // Opened read-write first, so that neither end's open waits for the other.
    const hold = fs.openSync(path, C.O_RDWR);
    try {
      return i < 2
        ? { child: fs.openSync(path, C.O_WRONLY), parent: fs.openSync(path, C.O_RDONLY | C.O_NONBLOCK) }
        : { child: fs.openSync(path, C.O_RDONLY), parent: fs.openSync(path, C.O_WRONLY | C.O_NONBLOCK) };
    } finally {
      fs.closeSync(hold);
      fs.unlinkSync(path);
    }
  });
  return {
    stdio: [withStdin ? ends[2].child : 'ignore', ends[0].child, ends[1].child],
    closeChildEnds() { for (const e of ends) fs.closeSync(e.child); },
    out: new net.Socket({ fd: ends[0].parent, readable: true, writable: false }),
    err: new net.Socket({ fd: ends[1].parent, readable: true, writable: false }),
    in: withStdin ? new net.Socket({ fd: ends[2].parent, readable: false, writable: true }) : null,
  };
}
function start(id, req) {
  const env = Object.assign({ HOME: '/' }, base, req.env);
  let child;
  let code = null;
  let finished = false;
  let linger;
  let open = 2;
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
    if (io) { io.out.destroy(); io.err.destroy(); }
    finish();
  };
  let io = null;
  try {
    io = fifos(req.stdin);
  } catch (err) {
    refuse(err);
    return;
  }
  try {
    child = spawn(req.argv[0], req.argv.slice(1), {
      cwd: req.cwd, env, uid: req.uid, gid: req.gid,
      stdio: io ? io.stdio : [req.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    if (io) io.closeChildEnds();
    refuse(err);
    return;
  } finally {
    if (io && child) io.closeChildEnds();
  }
  const out = io ? io.out : child.stdout;
  const err = io ? io.err : child.stderr;
  const stdin = io ? io.in : child.stdin;
  const p = {
    child, stdin, detached: false,
    pause() { out.pause(); err.pause(); },
    resume() { out.resume(); err.resume(); },
  };
  procs.set(id, p);
  if (blocked) p.pause();
  const ended = () => { open -= 1; if (open === 0 && code !== null) finish(); };
  out.on('data', (c) => { if (!p.detached) send(T.O, id, c); });
  err.on('data', (c) => { if (!p.detached) send(T.R, id, c); });
  out.once('close', ended);
  err.once('close', ended);
  out.on('error', () => {});
  err.on('error', () => {});
  if (stdin) stdin.on('error', () => {});
  child.on('error', refuse);
  child.on('exit', (c, signal) => {
    code = c !== null ? c : 128 + (constants.signals[signal] || 0);
    if (stdin && io) stdin.destroy();
    if (open === 0) { finish(); return; }
    // A process it left behind may hold its output open: that output is read for a while only.
    linger = setTimeout(() => { out.destroy(); err.destroy(); finish(); }, LINGER_MS);
  });
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
// The gateway forwarder, here rather than a Node process of its own (one start-up less per run):
// the sandbox has no network, so the worker's gateway socket, mounted read-only, is exposed on
// 127.0.0.1 for the CLIs, which speak only TCP. It passes bytes both ways and reads none of them.
// Its messages are those of docker/agents/common/forwarder.js, which the worker recognises.
function forward(id, req) {
  const conns = new Set();
  let reported = 0;
  let stopped = false;
  const say = (msg) => send(T.R, id, Buffer.from('jetty-forwarder: ' + msg + '\n'));
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ path: req.socket, allowHalfOpen: true });
    conns.add(client);
    conns.add(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
      conns.delete(client);
      conns.delete(upstream);
    };
    client.on('error', closeBoth);
    client.on('close', closeBoth);
    upstream.on('error', (err) => {
      // The first few only: a CLI retrying against a dead gateway must not flood the run's stderr.
      if (reported < 5) { reported += 1; say('cannot reach the gateway at ' + req.socket + ': ' + (err.code || err.message)); }
      closeBoth();
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const stop = (code) => {
    if (stopped) return;
    stopped = true;
    procs.delete(id);
    server.close();
    for (const c of conns) c.destroy();
    exitFrame(id, code);
  };
  procs.set(id, { forwarder: true, detached: false, stop, pause() {}, resume() {} });
  server.on('error', (err) => {
    say('cannot listen on 127.0.0.1:' + req.port + ': ' + (err.code || err.message));
    stop(1);
  });
  server.listen({ host: '127.0.0.1', port: req.port }, () => send(T.O, id, Buffer.from('ready\n')));
}
function onFrame(type, id, body) {
  if (type === T.F) {
    let req;
    try { req = JSON.parse(body.toString('utf8')); } catch { req = null; }
    if (req && Number.isInteger(req.port) && typeof req.socket === 'string') forward(id, req);
    else exitFrame(id, 2);
    return;
  }
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
  if (p.forwarder) { if (type === T.E) p.stop(0); return; }
  if (type === T.D) p.detached = true;
  else if (type === T.E) { if (p.stdin) p.stdin.end(); }
  else if (type === T.I && p.stdin && !p.stdin.writableEnded && !p.stdin.destroyed) {
    if (!p.stdin.write(Buffer.from(body))) {
      process.stdin.pause();
      const go = () => { p.stdin.off('drain', go); p.stdin.off('close', go); process.stdin.resume(); };
      p.stdin.on('drain', go);
      p.stdin.on('close', go);
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
