import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { type AddressInfo, connect, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_EGRESS_LIMITS, type EgressLimits } from '../../src/egress/limits.js';
import { OPEN_EGRESS } from '../../src/egress/policy.js';
import { EgressProxy, proxyToken } from '../../src/egress/proxy.js';
import type { NetConnectData, NewEvent } from '../../src/events/types.js';
import { ProviderGateway } from '../../src/gateway/gateway.js';
import { AddressPolicy, type ResolvedAddress, type Resolver } from '../../src/net/address-policy.js';

// The proxy on a real gateway socket, with real TCP to a loopback upstream. Names resolve through
// a test resolver, and every connection the proxy opens goes through a guard that records it and
// refuses anything off loopback: a test that went wrong cannot send a packet anywhere else.

let upstream: Server;
let port: number;
const hits: Array<{ url: string; host: string | undefined; proxyAuth: string | undefined }> = [];

beforeAll(async () => {
  upstream = createServer((req, res) => {
    hits.push({ url: req.url ?? '', host: req.headers.host, proxyAuth: req.headers['proxy-authorization'] });
    if (req.url === '/big') return void res.end('x'.repeat(64 * 1024));
    res.end('hello from upstream');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  port = (upstream.address() as AddressInfo).port;
});
afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

const NAMES: Record<string, string[]> = {
  'upstream.test': ['127.0.0.1'],
  'other.test': ['127.0.0.1'],
  'metadata.test': ['169.254.169.254'],
  // One name, a refused address first: the proxy must connect to the checked one, and only it.
  'rebind.test': ['169.254.169.254', '127.0.0.1'],
};

interface Rig {
  gateway: ProviderGateway;
  proxy: EgressProxy;
  socketPath: string;
  dialed: Array<{ address: string; port: number }>;
  lookups: string[];
  events: NewEvent[];
  net(): NetConnectData[];
}

const rigs: Array<{ gateway: ProviderGateway; dir: string }> = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.gateway.stop();
    await rm(r.dir, { recursive: true, force: true });
  }
});

async function rig(limits: Partial<EgressLimits> = {}): Promise<Rig> {
  const dir = await mkdtemp(path.join(tmpdir(), 'egress-'));
  const socketPath = path.join(dir, 'gateway.sock');
  const dialed: Rig['dialed'] = [];
  const lookups: string[] = [];
  const resolver: Resolver = async (host) => {
    lookups.push(host);
    const found = NAMES[host];
    if (!found) throw new Error('ENOTFOUND');
    return found.map((address): ResolvedAddress => ({ address, family: 4 }));
  };
  const proxy = new EgressProxy({
    // The operator lists 127.0.0.1 (NETWORK_ALLOW_PRIVATE); nothing else private.
    addresses: new AddressPolicy([{ kind: 'cidr', value: '127.0.0.1/32' }], resolver),
    limits: {
      ...DEFAULT_EGRESS_LIMITS,
      ports: [
        [80, 80],
        [443, 443],
        [port, port],
      ],
      ...limits,
    },
    connect: (t) => {
      dialed.push({ address: t.address, port: t.port });
      if (t.address !== '127.0.0.1') {
        const s = new Socket();
        process.nextTick(() => s.destroy(new Error('test guard: off loopback')));
        return s;
      }
      return connect({ host: t.address, port: t.port });
    },
  });
  const gateway = new ProviderGateway(socketPath, undefined, proxy);
  await gateway.start();
  rigs.push({ gateway, dir });
  const events: NewEvent[] = [];
  return {
    gateway,
    proxy,
    socketPath,
    dialed,
    lookups,
    events,
    net: () => events.flatMap((e) => (e.type === 'net.connect' ? [e.data] : [])),
  };
}

const basic = (token: string) => `Basic ${Buffer.from(`jetty:${token}`).toString('base64')}`;

/** Sends a CONNECT on the gateway socket; resolves with the answer's head and the open socket. */
function connectVia(
  socketPath: string,
  authority: string,
  token: string | null,
): Promise<{ status: number; head: string; body: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath });
    let buf = '';
    socket.on('error', reject);
    socket.on('data', function onData(chunk) {
      buf += chunk.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const head = buf.slice(0, end);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      const body = buf.slice(end + 4);
      resolve({ status, head, body, socket });
    });
    const auth = token === null ? '' : `Proxy-Authorization: ${basic(token)}\r\n`;
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth}\r\n`);
  });
}

function readAll(socket: Socket, initial = ''): Promise<string> {
  return new Promise((resolve) => {
    let text = initial;
    socket.on('data', (c) => {
      text += c.toString('latin1');
    });
    socket.on('close', () => resolve(text));
  });
}

/** A plain-HTTP request in absolute form through the proxy. */
function getVia(
  socketPath: string,
  url: string,
  token: string | null,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method: 'GET',
        path: url,
        headers: token === null ? {} : { 'proxy-authorization': basic(token), connection: 'close' },
      },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const waitFor = async (cond: () => boolean, ms = 3000) => {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('the egress proxy behind the gateway socket', () => {
  it('tunnels a CONNECT to an allowed host, to the checked address, and records it when it closes', async () => {
    const r = await rig();
    const s = r.proxy.open('run-1', { mode: 'allowlist', allow: ['upstream.test'] }, (e) => r.events.push(e));
    const { status, socket } = await connectVia(r.socketPath, `upstream.test:${port}`, s.token);
    expect(status).toBe(200);
    const all = readAll(socket);
    socket.write('GET /through-tunnel HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n\r\n');
    expect(await all).toContain('hello from upstream');
    await waitFor(() => r.net().length === 1);
    const [ev] = r.net();
    expect(ev).toMatchObject({
      host: 'upstream.test',
      port,
      kind: 'connect',
      outcome: 'allowed',
      address: '127.0.0.1',
    });
    expect(ev?.code).toBeUndefined();
    expect(ev?.bytes_up).toBeGreaterThan(40);
    expect(ev?.bytes_down).toBeGreaterThan(19);
    expect(r.dialed).toEqual([{ address: '127.0.0.1', port }]);
    expect(hits.at(-1)).toMatchObject({ url: '/through-tunnel', proxyAuth: undefined });
    expect(s.close()).toMatchObject({
      policy: 'allowlist',
      allow: ['upstream.test'],
      connections: 1,
      allowed: 1,
      refused: 0,
      hosts: [{ host: 'upstream.test', connections: 1, refused: 0 }],
    });
  });

  it('passes a plain-HTTP absolute-form request on, with the URL’s Host and without the proxy’s credentials', async () => {
    const r = await rig();
    const s = r.proxy.open('run-2', OPEN_EGRESS, (e) => r.events.push(e));
    const res = await getVia(r.socketPath, `http://upstream.test:${port}/plain?q=1`, s.token);
    expect(res).toMatchObject({ status: 200, body: 'hello from upstream' });
    expect(hits.at(-1)).toEqual({ url: '/plain?q=1', host: `upstream.test:${port}`, proxyAuth: undefined });
    await waitFor(() => r.net().length === 1);
    expect(r.net()[0]).toMatchObject({
      kind: 'http',
      method: 'GET',
      status: 200,
      outcome: 'allowed',
      bytes_down: 19,
    });
    s.close();
  });

  it('refuses a host the policy does not list at once, recorded, and nothing reaches it', async () => {
    const r = await rig();
    const s = r.proxy.open('run-3', { mode: 'allowlist', allow: ['upstream.test'] }, (e) => r.events.push(e));
    const before = hits.length;
    const tunnel = await connectVia(r.socketPath, `other.test:${port}`, s.token);
    expect(tunnel.status).toBe(403);
    expect(tunnel.body).toContain(
      "other.test is not allowed by this run's egress policy, allowlist (upstream.test)",
    );
    const plain = await getVia(r.socketPath, `http://other.test:${port}/`, s.token);
    expect(plain.status).toBe(403);
    expect(plain.headers['x-jetty-egress']).toBe('not_allowed');
    expect(r.net().map((e) => [e.host, e.outcome, e.code])).toEqual([
      ['other.test', 'refused', 'not_allowed'],
      ['other.test', 'refused', 'not_allowed'],
    ]);
    // Refused before any lookup or connection.
    expect(r.lookups).toEqual([]);
    expect(r.dialed).toEqual([]);
    expect(hits.length).toBe(before);
    s.close();
  });

  it('refuses the metadata address whatever the policy, before any connection', async () => {
    const r = await rig();
    const s = r.proxy.open('run-4', OPEN_EGRESS, (e) => r.events.push(e));
    for (const target of ['169.254.169.254:80', 'metadata.test:80', '[::ffff:169.254.169.254]:80']) {
      const res = await connectVia(r.socketPath, target, s.token);
      expect(res.status).toBe(403);
      expect(res.body).toContain(
        'a link-local (cloud metadata) address; an operator can allow it in NETWORK_ALLOW_PRIVATE',
      );
    }
    const plain = await getVia(r.socketPath, 'http://169.254.169.254/latest/meta-data/', s.token);
    expect(plain.status).toBe(403);
    expect(r.net().map((e) => [e.outcome, e.code])).toEqual(Array(4).fill(['refused', 'private_address']));
    expect(r.dialed).toEqual([]);
    // Loopback other than the listed address: refused too.
    expect((await connectVia(r.socketPath, `127.0.0.2:${port}`, s.token)).status).toBe(403);
    expect(r.dialed).toEqual([]);
    s.close();
  });

  it('resolves a name once and connects to the address it checked, never to another', async () => {
    const r = await rig();
    const s = r.proxy.open('run-5', OPEN_EGRESS, (e) => r.events.push(e));
    const { status, socket } = await connectVia(r.socketPath, `rebind.test:${port}`, s.token);
    expect(status).toBe(200);
    socket.destroy();
    expect(r.lookups).toEqual(['rebind.test']);
    expect(r.dialed).toEqual([{ address: '127.0.0.1', port }]);
    s.close();
  });

  it('asks for the run’s token (407) and forgets it when the run ends', async () => {
    const r = await rig();
    const s = r.proxy.open('run-6', OPEN_EGRESS, (e) => r.events.push(e));
    const none = await connectVia(r.socketPath, `upstream.test:${port}`, null);
    expect(none.status).toBe(407);
    expect(none.head).toContain('Proxy-Authenticate: Basic realm="jetty egress"');
    expect((await connectVia(r.socketPath, `upstream.test:${port}`, 'jeg_wrong')).status).toBe(407);
    expect((await getVia(r.socketPath, `http://upstream.test:${port}/`, null)).status).toBe(407);
    s.close();
    expect((await connectVia(r.socketPath, `upstream.test:${port}`, s.token)).status).toBe(407);
    expect(r.net()).toEqual([]);
    expect(r.dialed).toEqual([]);
  });

  it('refuses ports outside EGRESS_PORTS', async () => {
    const r = await rig();
    const s = r.proxy.open('run-7', OPEN_EGRESS, (e) => r.events.push(e));
    const res = await connectVia(r.socketPath, 'upstream.test:25', s.token);
    expect(res.status).toBe(403);
    expect(res.body).toContain('port 25 is not one the egress proxy connects to (EGRESS_PORTS=80,443,');
    expect(r.net()[0]).toMatchObject({ outcome: 'refused', code: 'port_not_allowed' });
    s.close();
  });

  it('keeps the model gateway on the same socket, and without a proxy refuses proxy requests', async () => {
    const r = await rig();
    const res = await new Promise<number>((resolve) =>
      request({ socketPath: r.socketPath, method: 'GET', path: '/' }, (m) =>
        resolve(m.statusCode ?? 0),
      ).end(),
    );
    expect(res).toBe(200);
    const dir = await mkdtemp(path.join(tmpdir(), 'egress-'));
    const bare = new ProviderGateway(path.join(dir, 'gateway.sock'));
    await bare.start();
    rigs.push({ gateway: bare, dir });
    expect((await connectVia(bare.socketPath, `upstream.test:${port}`, 'x')).status).toBe(403);
    expect((await getVia(bare.socketPath, `http://upstream.test:${port}/`, 'x')).status).toBe(403);
  });
});

describe('the bounds on a run’s egress', () => {
  const warnings = (r: Rig) => r.events.filter((e) => e.type === 'run.warning').map((e) => e.data);

  it('refuses connections past EGRESS_MAX_CONNECTIONS, and says so once', async () => {
    const r = await rig({ maxConnections: 2 });
    const s = r.proxy.open('run-8', OPEN_EGRESS, (e) => r.events.push(e));
    for (let i = 0; i < 2; i++) {
      const { status, socket } = await connectVia(r.socketPath, `upstream.test:${port}`, s.token);
      expect(status).toBe(200);
      socket.destroy();
    }
    for (let i = 0; i < 2; i++) {
      const res = await connectVia(r.socketPath, `upstream.test:${port}`, s.token);
      expect(res.status).toBe(429);
      expect(res.body).toContain('the run opened its 2 connections (EGRESS_MAX_CONNECTIONS)');
    }
    expect(warnings(r)).toEqual([
      {
        code: 'egress_limit',
        message:
          'Egress: the run opened its 2 connections (EGRESS_MAX_CONNECTIONS); further connections are refused or cut.',
      },
    ]);
    s.close();
  });

  it('refuses a connection past EGRESS_MAX_CONCURRENT while the others are open', async () => {
    const r = await rig({ maxConcurrent: 1 });
    const s = r.proxy.open('run-9', OPEN_EGRESS, (e) => r.events.push(e));
    const first = await connectVia(r.socketPath, `upstream.test:${port}`, s.token);
    expect(first.status).toBe(200);
    expect((await connectVia(r.socketPath, `upstream.test:${port}`, s.token)).status).toBe(429);
    first.socket.destroy();
    await waitFor(() => r.net().some((e) => e.outcome === 'allowed'));
    expect((await connectVia(r.socketPath, `upstream.test:${port}`, s.token)).status).toBe(200);
    s.close();
  });

  it('cuts a connection that passes EGRESS_MAX_BYTES and refuses the next', async () => {
    const r = await rig({ maxBytes: 4096 });
    const s = r.proxy.open('run-10', OPEN_EGRESS, (e) => r.events.push(e));
    const { socket } = await connectVia(r.socketPath, `upstream.test:${port}`, s.token);
    const all = readAll(socket);
    socket.write('GET /big HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n\r\n');
    const got = await all;
    expect(got.length).toBeLessThan(64 * 1024);
    await waitFor(() => r.net().length === 1);
    expect(r.net()[0]).toMatchObject({ outcome: 'allowed', code: 'byte_limit' });
    expect(r.net()[0]?.reason).toContain('EGRESS_MAX_BYTES');
    expect((await connectVia(r.socketPath, `upstream.test:${port}`, s.token)).status).toBe(429);
    expect(warnings(r).map((w) => w.code)).toEqual(['egress_limit']);
    s.close();
  });

  it('closes a tunnel idle for EGRESS_IDLE_TIMEOUT_MS', async () => {
    const r = await rig({ idleTimeoutMs: 300 });
    const s = r.proxy.open('run-11', OPEN_EGRESS, (e) => r.events.push(e));
    const { socket } = await connectVia(r.socketPath, `upstream.test:${port}`, s.token);
    await readAll(socket);
    expect(r.net()[0]).toMatchObject({ outcome: 'allowed', code: 'idle_timeout' });
    expect(r.net()[0]?.ms).toBeGreaterThanOrEqual(250);
    s.close();
  });

  it('cuts what is still open when the run ends, recorded, and admits nothing after', async () => {
    const r = await rig();
    const s = r.proxy.open('run-12', OPEN_EGRESS, (e) => r.events.push(e));
    const { socket } = await connectVia(r.socketPath, `upstream.test:${port}`, s.token);
    const closed = readAll(socket);
    await connectVia(r.socketPath, 'metadata.test:80', s.token);
    const summary = s.close();
    await closed;
    expect(r.net().map((e) => [e.host, e.outcome, e.code])).toEqual([
      ['metadata.test', 'refused', 'private_address'],
      ['upstream.test', 'allowed', 'run_ended'],
    ]);
    expect(summary).toMatchObject({ policy: 'open', connections: 2, allowed: 1, refused: 1, failed: 0 });
    expect(summary.hosts.map((h) => h.host).sort()).toEqual(['metadata.test', 'upstream.test']);
  });

  it('reads the token from Basic credentials, the password or else the user', () => {
    expect(proxyToken(`Basic ${Buffer.from('jetty:jeg_abc').toString('base64')}`)).toBe('jeg_abc');
    expect(proxyToken(`Basic ${Buffer.from('jeg_abc:').toString('base64')}`)).toBe('jeg_abc');
    expect(proxyToken('Bearer x')).toBeUndefined();
  });
});
