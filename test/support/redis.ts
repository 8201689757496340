import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

/** A private redis-server for one test file, on a free loopback port, without persistence. */
export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** `port`: a port to start on again, after stop(), as a Redis that comes back after an outage. */
export async function startRedis(opts: { port?: number } = {}): Promise<TestRedis> {
  const port = opts.port ?? (await freePort());
  const proc: ChildProcess = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let spawnError: Error | undefined;
  proc.once('error', (e) => {
    spawnError = e;
  });
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (spawnError)
      throw new Error(`redis-server could not start (${spawnError.message}); run scripts/setup.sh --test`);
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      break;
    } catch {
      probe.disconnect();
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    port,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Every key of a Redis and its value, one line each: for asserting what is (not) stored. */
export async function dumpRedis(url: string): Promise<string> {
  const r = new Redis(url);
  try {
    const out: string[] = [];
    for (const key of await r.keys('*')) {
      const type = await r.type(key);
      const value =
        type === 'string'
          ? await r.get(key)
          : type === 'hash'
            ? await r.hgetall(key)
            : type === 'list'
              ? await r.lrange(key, 0, -1)
              : type === 'set'
                ? await r.smembers(key)
                : type === 'zset'
                  ? await r.zrange(key, 0, -1)
                  : type === 'stream'
                    ? await r.xrange(key, '-', '+')
                    : type;
      out.push(`${key} ${JSON.stringify(value)}`);
    }
    return out.join('\n');
  } finally {
    r.disconnect();
  }
}
