import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  claimSocketDir,
  probeHttpSocket,
  STALE_DIR_GRACE_MS,
  sweepStaleSocketDirs,
} from '../../src/gateway/socket-dir.js';

// Each worker process serves its sockets from a directory of its own under GATEWAY_SOCKET_DIR; a
// directory left by a process that died goes, one whose server still answers stays.

const roots: string[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const r of roots.splice(0)) await rm(r, { recursive: true, force: true });
});

async function root(): Promise<string> {
  const r = await mkdtemp(path.join(tmpdir(), 'jetty-sd-'));
  roots.push(r);
  return r;
}

async function serve(socketPath: string): Promise<Server> {
  const s = createServer((_req, res) => res.writeHead(200).end());
  await new Promise<void>((r) => s.listen(socketPath, r));
  servers.push(s);
  return s;
}

/** A process that listened on the socket and was killed with SIGKILL: its socket file stays. */
async function killedListener(socketPath: string): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise((r) => child.stdout!.once('data', r));
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  await stat(socketPath);
}

/** Makes a directory look older than the grace period. */
async function age(dir: string): Promise<void> {
  const t = new Date(Date.now() - STALE_DIR_GRACE_MS - 1_000);
  await utimes(dir, t, t);
}

describe('worker socket directories', () => {
  it('two processes of the same instance on one host get two directories', async () => {
    const r = await root();
    const a = await claimSocketDir(r, 'host-1', 4242, 'gateway.sock');
    const b = await claimSocketDir(r, 'host-1', 4242, 'gateway.sock');
    expect(a).not.toBe(b);
    expect(path.dirname(a)).toBe(r);
    expect(path.basename(a)).toMatch(/^host-1-4242-[0-9a-f]{6}$/);
    expect((await stat(a)).mode & 0o777).toBe(0o755);
  });

  it('refuses a root so deep that the socket path would not fit, naming the setting', async () => {
    const deep = path.join(await root(), 'x'.repeat(90));
    await expect(claimSocketDir(deep, 'host-1', 1, 'gateway.sock')).rejects.toThrow(/GATEWAY_SOCKET_DIR/);
  });

  it('sweeps the directory of a dead worker, keeps live ones, young ones and foreign ones', async () => {
    const r = await root();
    const own = await claimSocketDir(r, 'w', 1, 'gateway.sock');
    const live = await claimSocketDir(r, 'w', 2, 'gateway.sock');
    const dead = await claimSocketDir(r, 'w', 3, 'gateway.sock');
    const young = await claimSocketDir(r, 'w', 4, 'gateway.sock');
    const foreign = path.join(r, 'not-a-worker-dir');
    await mkdir(foreign);
    await serve(path.join(live, 'gateway.sock'));
    await killedListener(path.join(dead, 'gateway.sock'));
    for (const d of [own, live, dead, foreign]) await age(d);

    const removed = await sweepStaleSocketDirs(r, own);

    expect(removed).toEqual([dead]);
    expect((await readdir(r)).sort()).toEqual(
      [own, live, young, foreign].map((d) => path.basename(d)).sort(),
    );
  });

  it('the readiness probe answers for a serving gateway and says why for a removed socket', async () => {
    const r = await root();
    const sock = path.join(r, 'gateway.sock');
    await serve(sock);
    expect(await probeHttpSocket(sock)).toBeNull();
    await rm(sock);
    expect(await probeHttpSocket(sock)).toMatch(/cannot connect to the gateway at .*gateway\.sock: ENOENT/);
  });
});
