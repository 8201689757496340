import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { DockerSandboxDriver, SANDBOX_LABELS } from '../../src/sandbox/docker-driver.js';
import {
  GATEWAY_MOUNT,
  GATEWAY_SOCKET_NAME,
  type RunningSandbox,
  type SandboxDriver,
  type SandboxSpec,
} from '../../src/sandbox/driver.js';

/**
 * The SandboxDriver lifecycle suite, run against the real Docker engine and the real claude-code
 * image (docker/build-images.sh builds it). Nothing is mocked. Every test gets its own instance
 * label and run id, and fails if it leaves a container behind.
 */
const SKIP = process.env.JETTY_SKIP_DOCKER === '1';
/** The lean environment with claude-code's agent layer mounted, as a default run has it. */
const IMAGE = 'jetty/env-lean:1';
const AGENT_IMAGE = 'jetty/agent-claude-code:2.1.197';
/** The sandboxes' writable space here: /app 32 MiB, /tmp 16, /home/agent 12, /var/tmp 4. */
const DISK = 64 * 1024 ** 2;
const MiB = 1024 ** 2;
const LIMITS = { maxFiles: 100, maxBytes: 64 * MiB, maxFileBytes: 64 * MiB };
const docker = new Dockerode();

if (SKIP) console.warn('sandbox-docker: skipped because JETTY_SKIP_DOCKER=1 (no Docker checks ran)');

interface Harness {
  instance: string;
  driver: SandboxDriver;
  /** Host directory mounted at /run/jetty (world-traversable, like the gateway's). */
  socketDir: string;
  spec(over: Partial<SandboxSpec>): SandboxSpec;
}

let current: Harness | undefined;
const tempDirs: string[] = [];

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

async function harness(): Promise<Harness> {
  const instance = `test-${randomUUID().slice(0, 8)}`;
  const socketDir = await tempDir('jetty-gw-');
  // mkdtemp makes 0700 dirs; the sandbox user (uid 1000) must be able to traverse it.
  await chmod(socketDir, 0o755);
  const driver = new DockerSandboxDriver({ docker, instance });
  const h: Harness = {
    instance,
    driver,
    socketDir,
    spec: (over) => ({
      runId: `${instance}-${randomUUID().slice(0, 8)}`,
      image: IMAGE,
      agentImage: AGENT_IMAGE,
      argv: ['true'],
      env: {},
      files: [],
      limits: { cpus: 1, memoryBytes: 512 * 1024 ** 2, pids: 256, diskBytes: DISK },
      gatewaySocketDir: socketDir,
      ...over,
    }),
  };
  current = h;
  return h;
}

async function containersOf(instance: string): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${SANDBOX_LABELS.instance}=${instance}`] } });
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads until `marker` has been seen, leaving the rest of the stream unread (and paused). */
function readUntil(stream: Readable, marker: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      if (!seen.includes(marker)) return;
      stream.off('data', onData);
      stream.off('error', reject);
      stream.pause();
      resolve(seen);
    };
    stream.on('data', onData);
    stream.on('error', reject);
  });
}

/** What a started agent printed, and its exit code, once it has ended (the sandbox stays). */
async function ended(sandbox: RunningSandbox) {
  const [stdout, stderr, { exitCode }] = await Promise.all([
    text(sandbox.stdout),
    text(sandbox.stderr),
    sandbox.wait(),
  ]);
  return { stdout, stderr, exitCode };
}

/** A bash script as the agent, in a sandbox of 256 MiB and 64 processes. */
function startSmall(h: Harness, script: string): Promise<RunningSandbox> {
  return h.driver.start(
    h.spec({
      limits: { cpus: 1, memoryBytes: 256 * MiB, pids: 64, diskBytes: DISK },
      argv: ['bash', '-c', script],
    }),
  );
}

/** Runs a spec to the end and returns what it printed; the container is removed. */
async function run(h: Harness, over: Partial<SandboxSpec>) {
  const sandbox = await h.driver.start(h.spec(over));
  try {
    return { ...(await ended(sandbox)), id: sandbox.id };
  } finally {
    await sandbox.remove();
  }
}

async function isGone(id: string): Promise<boolean> {
  try {
    await docker.getContainer(id).inspect();
    return false;
  } catch (err) {
    return (err as { statusCode?: number }).statusCode === 404;
  }
}

describe.skipIf(SKIP)('DockerSandboxDriver against the real engine and image', () => {
  beforeAll(async () => {
    await docker.ping().catch((err: unknown) => {
      throw new Error(`the Docker engine is unreachable (${String(err)}): run scripts/setup.sh`);
    });
    await docker
      .getImage(IMAGE)
      .inspect()
      .catch(() => {
        throw new Error(`${IMAGE} is missing: build it with \`bash docker/build-images.sh\``);
      });
  });

  afterEach(async () => {
    const h = current;
    current = undefined;
    if (!h) return;
    const left = await containersOf(h.instance);
    for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
    expect(
      left.map((c) => c.Names),
      'containers left behind by the test',
    ).toEqual([]);
  });

  afterAll(async () => {
    await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('runs a command: stdout and stderr apart, the exit code, large output intact', async () => {
    const h = await harness();
    const res = await run(h, {
      argv: [
        'bash',
        '-c',
        'echo one; echo oops >&2; echo two; head -c 300000 /dev/zero | tr "\\0" x; exit 3',
      ],
    });
    expect(res.exitCode).toBe(3);
    expect(res.stderr).toBe('oops\n');
    const [first, second, big] = res.stdout.split('\n');
    expect([first, second]).toEqual(['one', 'two']);
    expect(big).toBe('x'.repeat(300000));
  });

  it('a process can open its own stdout and stderr by name, the agent and a check after it alike', async () => {
    const h = await harness();
    const byName =
      "echo out > /dev/stdout; echo err > /dev/stderr; python3 -c \"open('/proc/self/fd/1', 'w').write('py\\n')\" 2>/dev/null || echo py";
    const sandbox = await h.driver.start(h.spec({ argv: ['bash', '-c', byName] }));
    try {
      const { stdout, stderr, exitCode } = await ended(sandbox);
      expect([stdout, stderr, exitCode]).toEqual(['out\npy\n', 'err\n', 0]);
      const check = await sandbox.exec(['bash', '-c', byName], { timeoutMs: 10_000, maxOutput: 1024 });
      expect([check.stdout, check.stderr, check.exitCode]).toEqual(['out\npy\n', 'err\n', 0]);
    } finally {
      await sandbox.remove();
    }
  });

  it('the image carries the pinned claude CLI', async () => {
    const h = await harness();
    const res = await run(h, { argv: ['claude', '--version'] });
    expect(res.exitCode).toBe(0);
    expect(res.stdout.trim()).toBe('2.1.197 (Claude Code)');
  });

  it('places files owned by the sandbox user and pipes stdin to the process', async () => {
    const h = await harness();
    const res = await run(h, {
      files: [
        { path: '/app/.jetty/prompt.md', content: 'the prompt file' },
        { path: '/home/agent/.config/tool/settings.json', content: Buffer.from('{"a":1}'), mode: 0o600 },
        { path: '/tmp/note.txt', content: 'n' },
      ],
      stdin: 'line one\nline two\n',
      argv: [
        'bash',
        '-c',
        'cat; stat -c "%n %u:%g %a" /app/.jetty/prompt.md /home/agent/.config/tool/settings.json ' +
          '/home/agent/.config /tmp /app; cat /home/agent/.config/tool/settings.json; echo; ' +
          'touch /home/agent/.config/tool/new && echo writable',
      ],
    });
    expect(res.exitCode).toBe(0);
    expect(res.stdout.split('\n')).toEqual([
      'line one',
      'line two',
      '/app/.jetty/prompt.md 1000:1000 644',
      '/home/agent/.config/tool/settings.json 1000:1000 600',
      '/home/agent/.config 1000:1000 755',
      // An existing directory keeps its owner and mode.
      '/tmp 0:0 1777',
      '/app 1000:1000 755',
      '{"a":1}',
      'writable',
      '',
    ]);
  });

  it('stdin is empty when no stdinFile is given', async () => {
    const h = await harness();
    const res = await run(h, { argv: ['bash', '-c', 'cat; echo "[$?]"'] });
    expect(res.stdout).toBe('[0]\n');
  });

  it('collects regular files with size and sha256, nested dirs included; links and fifos are not', async () => {
    const h = await harness();
    const sandbox = await h.driver.start(
      h.spec({
        argv: [
          'bash',
          '-c',
          'set -e; mkdir -p /app/results/sub/deeper; printf hi > /app/results/hello.txt; ' +
            'head -c 70000 /dev/urandom > /app/results/sub/deeper/blob.bin; echo \'{"ok":true}\' > /app/results/sub/r.json; ' +
            ': > /app/results/empty.md; ln -s /etc/passwd /app/results/link; mkfifo /app/results/pipe; ' +
            'sha256sum /app/results/sub/deeper/blob.bin',
        ],
      }),
    );
    try {
      const [stdout, , { exitCode }] = await Promise.all([
        text(sandbox.stdout),
        text(sandbox.stderr),
        sandbox.wait(),
      ]);
      expect(exitCode).toBe(0);
      const dest = await tempDir('jetty-collect-');
      const { artifacts, dropped } = await sandbox.collect('/app/results', dest, LIMITS);
      expect(dropped).toEqual([]);
      const sha = (s: string) => createHash('sha256').update(s).digest('hex');
      expect(artifacts.map(({ localPath: _, ...a }) => a)).toEqual([
        { path: 'empty.md', size: 0, sha256: sha(''), content_type: 'text/markdown' },
        { path: 'hello.txt', size: 2, sha256: sha('hi'), content_type: 'text/plain' },
        {
          path: 'sub/deeper/blob.bin',
          size: 70000,
          sha256: stdout.split(' ')[0],
          content_type: 'application/octet-stream',
        },
        { path: 'sub/r.json', size: 12, sha256: sha('{"ok":true}\n'), content_type: 'application/json' },
      ]);
      for (const a of artifacts) expect(a.localPath).toBe(path.join(dest, ...a.path.split('/')));
      expect(await readFile(path.join(dest, 'hello.txt'), 'utf8')).toBe('hi');
      const blob = await readFile(path.join(dest, 'sub', 'deeper', 'blob.bin'));
      expect(createHash('sha256').update(blob).digest('hex')).toBe(stdout.split(' ')[0]);

      expect(await sandbox.collect('/app/not-there', await tempDir('jetty-collect-'), LIMITS)).toEqual({
        artifacts: [],
        dropped: [],
      });
    } finally {
      await sandbox.remove();
    }
  });

  it('bounds what it writes: ENOSPC past each mount, the image read-only, nothing on the host disk', async () => {
    const h = await harness();
    // 256 MiB into each place the sandbox user can write, against a 64 MiB limit for all of them.
    const script =
      'for d in /tmp /app /app/results /home/agent /var/tmp /run/lock /dev/shm; do ' +
      '  if err=$(dd if=/dev/zero of=$d/fill bs=1M count=256 2>&1); then echo "$d wrote"; ' +
      '  else case "$err" in *"No space left on device"*) echo "$d ENOSPC";; *) echo "$err";; esac; fi; ' +
      '  rm -f $d/fill; ' +
      'done; ' +
      'awk \'$2 == "/" { split($4, o, ","); print "/ " o[1] }\' /proc/mounts; ' +
      "df -k /app /tmp /home/agent /var/tmp | awk 'NR > 1 { print $6, $2 }'";
    const sandbox = await h.driver.start(h.spec({ argv: ['bash', '-c', script] }));
    try {
      const [stdout, , { exitCode }] = await Promise.all([
        text(sandbox.stdout),
        text(sandbox.stderr),
        sandbox.wait(),
      ]);
      expect(exitCode).toBe(0);
      expect(stdout.split('\n')).toEqual([
        '/tmp ENOSPC',
        '/app ENOSPC',
        '/app/results ENOSPC',
        '/home/agent ENOSPC',
        '/var/tmp ENOSPC',
        '/run/lock ENOSPC',
        '/dev/shm ENOSPC',
        '/ ro',
        // The split of the 64 MiB (KiB): a half, a quarter, three sixteenths, a sixteenth.
        '/app 32768',
        '/tmp 16384',
        '/home/agent 12288',
        '/var/tmp 4096',
        '',
      ]);
      // Nothing of it reached the container's writable layer on the host's disk.
      const withSize = docker.getContainer(sandbox.id) as unknown as {
        inspect(opts: { size: boolean }): Promise<{ SizeRw?: number }>;
      };
      const info = await withSize.inspect({ size: true });
      expect(info.SizeRw ?? 0).toBeLessThan(1024 * 1024);
    } finally {
      await sandbox.remove();
    }
  });

  it('kill() stops the agent, not the sandbox: what it wrote is still collected; the agent cannot stop it either', async () => {
    const h = await harness();
    // The agent kills every process it may (its own wrapper and forwarder too), then starts a
    // runaway that fills the pids limit: kill() must still work, and the files stay readable.
    const sandbox = await startSmall(
      h,
      'echo kept > /app/results/a.txt; (sleep 1; kill -9 -1) & ' +
        "setsid bash -c 'sleep 2; for i in $(seq 200); do sleep 600 & done; wait' & echo started; wait",
    );
    try {
      await readUntil(sandbox.stdout, 'started');
      sandbox.stdout.resume();
      sandbox.stderr.resume();
      // The agent's kill -9 -1 ended its own command: its process is over, the sandbox is not.
      expect((await sandbox.wait()).exitCode).toBe(137);
      expect((await docker.getContainer(sandbox.id).inspect()).State.Running).toBe(true);
      await new Promise((r) => setTimeout(r, 3000));
      await sandbox.kill();
      const { artifacts } = await sandbox.collect('/app/results', await tempDir('jetty-collect-'), LIMITS);
      expect(artifacts.map((a) => [a.path, a.size])).toEqual([['a.txt', 5]]);
    } finally {
      await sandbox.remove();
    }
  });

  it('an agent past its memory limit is what the OOM killer ends: the sandbox stays, its files are collected', async () => {
    const h = await harness();
    const sandbox = await startSmall(
      h,
      'echo kept > /app/results/a.txt; node -e "const a = []; for (;;) a.push(Buffer.alloc(1e7, 1))"; echo "hog $?"',
    );
    try {
      const { stdout, exitCode } = await ended(sandbox);
      expect([stdout, exitCode]).toEqual(['hog 137\n', 0]);
      expect((await docker.getContainer(sandbox.id).inspect()).State.Running).toBe(true);
      const { artifacts } = await sandbox.collect('/app/results', await tempDir('jetty-collect-'), LIMITS);
      expect(artifacts.map((a) => a.path)).toEqual(['a.txt']);
    } finally {
      await sandbox.remove();
    }
  });

  it('collects smallest first within the limits and reports the rest, leaving no partial file', async () => {
    const h = await harness();
    const sandbox = await h.driver.start(
      h.spec({
        argv: [
          'bash',
          '-c',
          'set -e; cd /app/results; head -c 1024 /dev/urandom > a.bin; head -c 2048 /dev/urandom > b.bin; ' +
            'head -c 3145728 /dev/urandom > m.bin; head -c 3145728 /dev/urandom > z/m2.bin 2>/dev/null || ' +
            '{ mkdir z; head -c 3145728 /dev/urandom > z/m2.bin; }; head -c 20971520 /dev/zero > big.bin; ' +
            'echo secret > locked.txt; chmod 000 locked.txt',
        ],
      }),
    );
    try {
      await Promise.all([text(sandbox.stdout), text(sandbox.stderr)]);
      expect((await sandbox.wait()).exitCode).toBe(0);
      const dest = await tempDir('jetty-collect-');
      const res = await sandbox.collect('/app/results', dest, {
        maxFiles: 10,
        maxBytes: 4 * MiB,
        maxFileBytes: 8 * MiB,
      });
      expect(res.artifacts.map((a) => a.path)).toEqual(['a.bin', 'b.bin', 'm.bin']);
      expect(res.dropped).toEqual([
        { path: 'big.bin', size: 20 * MiB, reason: 'file_too_large' },
        { path: 'z/m2.bin', size: 3 * MiB, reason: 'total_too_large' },
        { path: 'locked.txt', size: 7, reason: 'unreadable' },
      ]);
      // Exactly the kept files are on disk, whole.
      const { readdir, stat } = await import('node:fs/promises');
      expect((await readdir(dest, { recursive: true })).sort()).toEqual(['a.bin', 'b.bin', 'm.bin']);
      for (const a of res.artifacts) expect((await stat(a.localPath)).size).toBe(a.size);

      const few = await sandbox.collect('/app/results', await tempDir('jetty-collect-'), {
        maxFiles: 2,
        maxBytes: 64 * MiB,
        maxFileBytes: 64 * MiB,
      });
      // locked.txt (7 bytes) takes one of the two places and cannot be read.
      expect(few.artifacts.map((a) => a.path)).toEqual(['a.bin']);
      expect(few.dropped.map((d) => [d.path, d.reason])).toEqual([
        ['big.bin', 'too_many_files'],
        ['m.bin', 'too_many_files'],
        ['z/m2.bin', 'too_many_files'],
        ['b.bin', 'too_many_files'],
        ['locked.txt', 'unreadable'],
      ]);
    } finally {
      await sandbox.remove();
    }
  });

  it('pipes a large stdin intact and ends when the agent does, whatever it left running', async () => {
    const h = await harness();
    const input = Buffer.alloc(3 * MiB, 'abcdefghij');
    const sandbox = await h.driver.start(
      h.spec({ stdin: input, argv: ['bash', '-c', 'sha256sum; (sleep 600 &) ; exit 4'] }),
    );
    try {
      const t0 = Date.now();
      const [stdout, , { exitCode }] = await Promise.all([
        text(sandbox.stdout),
        text(sandbox.stderr),
        sandbox.wait(),
      ]);
      expect(stdout.split(' ')[0]).toBe(createHash('sha256').update(input).digest('hex'));
      expect(exitCode).toBe(4);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      await sandbox.remove();
    }
  });

  it('kill stops a long-running process at once; remove leaves nothing; both are safe twice', async () => {
    const h = await harness();
    const sandbox = await h.driver.start(h.spec({ argv: ['bash', '-c', 'echo started; exec sleep 600'] }));
    try {
      await once(sandbox.stdout, 'data');
      const t0 = Date.now();
      await sandbox.kill();
      expect(await sandbox.wait()).toEqual({ exitCode: null });
      expect(Date.now() - t0).toBeLessThan(5000);
      await sandbox.kill();
    } finally {
      await sandbox.remove();
      await sandbox.remove();
    }
    expect(await isGone(sandbox.id)).toBe(true);
  });

  it('start is idempotent per run: a second start replaces the first container', async () => {
    const h = await harness();
    const spec = h.spec({ argv: ['sleep', '600'] });
    const first = await h.driver.start(spec);
    const second = await h.driver.start(spec);
    try {
      expect(second.id).not.toBe(first.id);
      expect(await isGone(first.id)).toBe(true);
      const owned = await h.driver.listOwned();
      expect(owned).toEqual([{ id: second.id, runId: spec.runId, running: true }]);
    } finally {
      await second.kill();
      await second.remove();
    }
  });

  it('lists and removes owned sandboxes by id; another instance does not see them', async () => {
    const h = await harness();
    const sandbox = await h.driver.start(h.spec({ argv: ['sleep', '600'] }));
    const other = new DockerSandboxDriver({ docker, instance: `${h.instance}-other` });
    expect(await other.listOwned()).toEqual([]);
    expect((await h.driver.listOwned()).map((s) => s.id)).toEqual([sandbox.id]);
    await h.driver.removeById(sandbox.id);
    await h.driver.removeById(sandbox.id);
    expect(await h.driver.listOwned()).toEqual([]);
    await sandbox.remove();
  });

  it('confines the sandbox: an agent with no capabilities, no-new-privileges, no network, non-root, limits', async () => {
    const h = await harness();
    const spec = h.spec({
      limits: { cpus: 0.5, memoryBytes: 256 * 1024 ** 2, pids: 64, diskBytes: DISK },
      env: { SOME_TOKEN: 'per-run-token' },
      argv: [
        'bash',
        '-c',
        'id -u; id -g; grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)" /proc/self/status | tr -s "\\t" " "; ' +
          'ls /sys/class/net; echo "$SOME_TOKEN"; touch /run/jetty/x 2>/dev/null || echo read-only',
      ],
    });
    const sandbox = await h.driver.start(spec);
    try {
      const info = await docker.getContainer(sandbox.id).inspect();
      expect(info.Name).toBe(`/jetty-run-${spec.runId}`);
      // The container's own process is the supervisor, root with only what it takes to start the
      // agent as 1000 (src/sandbox/supervisor.ts); the agent has none of it.
      expect(info.Config.User).toBe('0:0');
      expect(info.HostConfig.CapAdd).toEqual(['SETUID', 'SETGID']);
      expect(info.HostConfig.ReadonlyRootfs).toBe(true);
      expect(Object.keys(info.HostConfig.Tmpfs ?? {}).sort()).toEqual([
        '/app',
        '/home/agent',
        '/run/lock',
        '/tmp',
        '/var/tmp',
      ]);
      expect(info.Config.Labels).toMatchObject({
        'jetty.managed': 'true',
        'jetty.instance': h.instance,
        'jetty.run-id': spec.runId,
      });
      expect(info.HostConfig.CapDrop).toEqual(['ALL']);
      expect(info.HostConfig.SecurityOpt).toEqual(['no-new-privileges']);
      expect(info.HostConfig.NetworkMode).toBe('none');
      expect(info.HostConfig.Memory).toBe(256 * 1024 ** 2);
      expect(info.HostConfig.MemorySwap).toBe(256 * 1024 ** 2);
      expect(info.HostConfig.PidsLimit).toBe(64);
      expect(info.HostConfig.NanoCpus).toBe(500_000_000);
      expect(info.HostConfig.Binds).toEqual([`${h.socketDir}:${GATEWAY_MOUNT}:ro`]);

      const [stdout, , { exitCode }] = await Promise.all([
        text(sandbox.stdout),
        text(sandbox.stderr),
        sandbox.wait(),
      ]);
      expect(exitCode).toBe(0);
      expect(stdout.split('\n')).toEqual([
        '1000',
        '1000',
        'CapInh: 0000000000000000',
        'CapPrm: 0000000000000000',
        'CapEff: 0000000000000000',
        // The container's bound (setuid, setgid) is of no use without privileges to regain.
        'CapBnd: 00000000000000c0',
        'CapAmb: 0000000000000000',
        'NoNewPrivs: 1',
        'lo',
        'per-run-token',
        'read-only',
        '',
      ]);
    } finally {
      await sandbox.remove();
    }
  });

  it('the in-sandbox forwarder reaches a host unix-socket server with no network', async () => {
    const h = await harness();
    const seen: { method?: string; url?: string; headers: IncomingHttpHeaders; body: string }[] = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        // Streamed in pieces, as a provider's SSE answer would be.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: one\n\n');
        setTimeout(() => res.end('data: two\n\n'), 50);
      });
    });
    const socketPath = path.join(h.socketDir, GATEWAY_SOCKET_NAME);
    server.listen(socketPath);
    await once(server, 'listening');
    // The sandbox user is uid 1000: connecting to a unix socket needs write permission on it.
    await chmod(socketPath, 0o666);
    try {
      const script =
        "const r = await fetch('http://127.0.0.1:4100/v1/messages?beta=true', { method: 'POST', " +
        "headers: { 'x-api-key': 'run-token' }, body: JSON.stringify({ hi: 1 }) }); " +
        'process.stdout.write(r.status + "\\n" + (await r.text()));';
      const res = await run(h, { argv: ['node', '--input-type=module', '-e', script] });
      expect(res.stderr).toBe('');
      expect(res.exitCode).toBe(0);
      expect(res.stdout).toBe('200\ndata: one\n\ndata: two\n\n');
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({
        method: 'POST',
        url: '/v1/messages?beta=true',
        headers: { 'x-api-key': 'run-token' },
        body: '{"hi":1}',
      });
    } finally {
      server.close();
    }
  });

  it('the forwarder survives a gateway that is not there yet: that connection fails, later ones work', async () => {
    const h = await harness();
    const script =
      "const get = () => fetch('http://127.0.0.1:4100/late').then((r) => r.status, () => 'failed'); " +
      "console.log('first: ' + (await get())); " +
      'for (let i = 0; i < 200; i++) { const s = await get(); ' +
      "if (s !== 'failed') { console.log('then: ' + s); process.exit(0); } " +
      'await new Promise((r) => setTimeout(r, 50)); } ' +
      'process.exit(1);';
    const sandbox = await h.driver.start(h.spec({ argv: ['node', '--input-type=module', '-e', script] }));
    const server = createServer((_req, res) => res.end('ok'));
    try {
      const stderr = text(sandbox.stderr);
      const stdout = await readUntil(sandbox.stdout, 'first: failed\n');
      const socketPath = path.join(h.socketDir, GATEWAY_SOCKET_NAME);
      server.listen(socketPath);
      await once(server, 'listening');
      await chmod(socketPath, 0o666);
      const [{ exitCode }, rest] = await Promise.all([sandbox.wait(), text(sandbox.stdout)]);
      expect(stdout + rest).toBe('first: failed\nthen: 200\n');
      expect(exitCode).toBe(0);
      expect(await stderr).toMatch(
        /^jetty-forwarder: cannot reach the gateway at \/run\/jetty\/gateway.sock: ENOENT\n/,
      );
    } finally {
      server.close();
      await sandbox.remove();
    }
  });

  it('a missing image is a clear, non-retryable error and leaves no container', async () => {
    const h = await harness();
    const err = await h.driver.start(h.spec({ image: 'jetty/runtime-not-built:0.0.0' })).catch((e) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'sandbox_image_missing', retryable: false });
    expect(err.message).toContain('jetty/runtime-not-built:0.0.0');
    expect(err.message).toContain('bash docker/build-images.sh');
  });

  it('ping passes against the engine and throws a retryable AppError when it is unreachable', async () => {
    const h = await harness();
    await h.driver.ping();
    const dir = await tempDir('jetty-nodocker-');
    const unreachable = new DockerSandboxDriver({
      docker: new Dockerode({ socketPath: path.join(dir, 'docker.sock') }),
      instance: h.instance,
    });
    const err = await unreachable.ping().catch((e) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'docker_unavailable', retryable: true });
    expect(err.message).toMatch(/Docker engine is unreachable/);
  });
});
