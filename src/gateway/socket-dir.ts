import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import { ConfigError } from '../config/index.js';

/**
 * Each worker process owns one directory under GATEWAY_SOCKET_DIR, named for its instance, pid and
 * a random suffix. Its sandboxes get that directory mounted, so the sockets the worker serves there
 * (the provider gateway today) are its own: workers sharing a DATA_DIR never bind, replace or delete
 * each other's sockets. The directory goes when the process stops; one left by a process that died
 * is removed by the next sweep of any worker sharing the root, once nothing answers on its sockets.
 */

/** sun_path holds 108 bytes on Linux, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 107;
/** A directory younger than this is never swept: its process may be between mkdir and listen. */
export const STALE_DIR_GRACE_MS = 10_000;
const PROBE_TIMEOUT_MS = 2_000;
/** `<instance>-<pid>-<6 hex>`: only directories named this way are ever swept. */
const DIR_NAME = /^[A-Za-z0-9_.-]+-\d+-[0-9a-f]{6}$/;

/** The directory name of one worker process. */
export function socketDirName(instance: string, pid: number): string {
  return `${instance.slice(0, 40)}-${pid}-${randomBytes(3).toString('hex')}`;
}

/**
 * Creates this process's directory under `root` and returns its absolute path. The sandbox user
 * must reach the sockets in it but not replace them: 0755.
 */
export async function claimSocketDir(
  root: string,
  instance: string,
  pid: number,
  longestSocketName: string,
): Promise<string> {
  const dir = path.join(path.resolve(root), socketDirName(instance, pid));
  const longest = path.join(dir, longestSocketName);
  if (Buffer.byteLength(longest) > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError(
      `GATEWAY_SOCKET_DIR: the socket path ${longest} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a unix socket allows; choose a shorter GATEWAY_SOCKET_DIR (or INSTANCE_NAME)`,
    );
  }
  await mkdir(path.dirname(dir), { recursive: true });
  await mkdir(dir);
  await chmod(dir, 0o755);
  return dir;
}

export async function releaseSocketDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/**
 * Whether an HTTP server answers on the unix socket: null when it does, else why not. A real
 * request, not a stat: a socket file whose server is gone (or that was deleted) fails it.
 */
export function probeHttpSocket(socketPath: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<string | null> {
  return new Promise((resolve) => {
    const req = request({ socketPath, method: 'HEAD', path: '/', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(
        res.statusCode !== undefined && res.statusCode < 500
          ? null
          : `the gateway at ${socketPath} answered ${res.statusCode}`,
      );
    });
    req.on('timeout', () => {
      req.destroy();
      resolve(`the gateway at ${socketPath} did not answer within ${timeoutMs} ms`);
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve(`cannot connect to the gateway at ${socketPath}: ${err.code ?? err.message}`),
    );
    req.end();
  });
}

/** Whether anything accepts connections on the socket; a timeout counts as alive (when unsure, keep). */
function socketAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path: socketPath });
    const done = (alive: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(alive);
    };
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    s.once('connect', () => done(true));
    s.once('error', (err: NodeJS.ErrnoException) =>
      done(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT'),
    );
  });
}

/**
 * Removes the directories under `root` left by worker processes that are gone: named like ours,
 * older than the grace period, and with no socket in them that accepts a connection. Returns the
 * paths removed.
 */
export async function sweepStaleSocketDirs(root: string, own: string, now = Date.now()): Promise<string[]> {
  const base = path.resolve(root);
  const entries = await readdir(base, { withFileTypes: true }).catch(() => []);
  const removed: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || !DIR_NAME.test(entry.name)) continue;
    const dir = path.join(base, entry.name);
    if (dir === path.resolve(own)) continue;
    if (await isStale(dir, now)) {
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return removed;
}

async function isStale(dir: string, now: number): Promise<boolean> {
  const st = await stat(dir).catch(() => null);
  if (!st || now - st.mtimeMs < STALE_DIR_GRACE_MS) return false;
  const names = await readdir(dir).catch(() => null);
  if (names === null) return false;
  for (const name of names) {
    const file = path.join(dir, name);
    const fst = await stat(file).catch(() => null);
    if (fst?.isSocket() && (await socketAlive(file))) return false;
  }
  return true;
}
