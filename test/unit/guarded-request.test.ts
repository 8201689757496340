import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AddressPolicy,
  AddressRefused,
  parseAllowList,
  type Resolver,
} from '../../src/net/address-policy.js';
import { guardedRequest, TooManyRedirects } from '../../src/net/guarded-request.js';

// Two HTTP servers on the same port of two loopback addresses: 127.0.0.2, which the policy here
// allows, and 127.0.0.1, which it does not. Which one a request lands on shows where it connected.
interface Seen {
  on: string;
  url: string;
  host: string | undefined;
  body: string;
}
const seen: Seen[] = [];
let allowed: Server;
let refused: Server;
let port = 0;

function serve(on: string): Server {
  return createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ on, url: req.url ?? '', host: (req.headers as IncomingHttpHeaders).host, body });
      const to = new URL(req.url ?? '/', 'http://x').searchParams.get('to');
      if (to) res.writeHead(308, { location: to }).end();
      else res.writeHead(204).end();
    });
  });
}

beforeAll(async () => {
  allowed = serve('127.0.0.2');
  await new Promise<void>((r) => allowed.listen(0, '127.0.0.2', r));
  port = (allowed.address() as { port: number }).port;
  refused = serve('127.0.0.1');
  await new Promise<void>((r) => refused.listen(port, '127.0.0.1', r));
});

afterAll(async () => {
  await new Promise((r) => allowed.close(r));
  await new Promise((r) => refused.close(r));
});

const allow127002 = (parseAllowList('127.0.0.2') as { entries: never[] }).entries;

describe('a request under the address policy', () => {
  it('resolves a name once per hop and connects to that address: a rebinding resolver gets nowhere', async () => {
    // A name that answers the allowed address for the check, then loopback for whoever asks again.
    let lookups = 0;
    const rebinding: Resolver = async () => [
      { address: lookups++ === 0 ? '127.0.0.2' : '127.0.0.1', family: 4 },
    ];
    seen.length = 0;
    const res = await guardedRequest({
      url: `http://hooks.example.com:${port}/hook`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
      policy: new AddressPolicy(allow127002, rebinding),
      maxRedirects: 0,
    });
    expect(res.status).toBe(204);
    expect(lookups).toBe(1);
    expect(seen).toEqual([
      { on: '127.0.0.2', url: '/hook', host: `hooks.example.com:${port}`, body: '{"a":1}' },
    ]);
  });

  it('follows redirects with the same POST, checking every hop: a public-looking name cannot bounce to loopback', async () => {
    const policy = new AddressPolicy(
      (parseAllowList('hooks.example.com') as { entries: never[] }).entries,
      async (host) => (host === 'hooks.example.com' ? [{ address: '127.0.0.2', family: 4 }] : []),
    );
    seen.length = 0;
    const to = `http://127.0.0.1:${port}/inner`;
    const err = await guardedRequest({
      url: `http://hooks.example.com:${port}/a?to=${encodeURIComponent(to)}`,
      method: 'POST',
      headers: {},
      body: 'x',
      policy,
      maxRedirects: 3,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(AddressRefused);
    expect(seen.map((s) => s.on)).toEqual(['127.0.0.2']);

    // An allowed redirect is followed, with the method and body kept.
    seen.length = 0;
    const next = `http://127.0.0.2:${port}/b`;
    const direct = await guardedRequest({
      url: `http://127.0.0.2:${port}/a?to=${encodeURIComponent(next)}`,
      method: 'POST',
      headers: {},
      body: 'x',
      policy: new AddressPolicy(allow127002),
      maxRedirects: 3,
    });
    expect(direct).toMatchObject({ status: 204, redirects: 1, url: next });
    expect(seen.filter((s) => s.url === '/b')).toEqual([expect.objectContaining({ body: 'x' })]);
  });

  it('checks IP literals in every spelling the URL parser accepts', async () => {
    seen.length = 0;
    for (const host of ['2130706433', '0x7f.1', '127.1', '[::ffff:7f00:1]', '[::ffff:127.0.0.1]']) {
      const err = await guardedRequest({
        url: `http://${host}:${port}/`,
        method: 'POST',
        headers: {},
        policy: new AddressPolicy(),
        maxRedirects: 0,
      }).catch((e) => e);
      expect(err, host).toBeInstanceOf(AddressRefused);
    }
    expect(seen).toEqual([]);
  });

  it('stops after the bound on redirects', async () => {
    const loop = `http://127.0.0.2:${port}/loop`;
    const self = `${loop}?to=${encodeURIComponent(`${loop}?to=${encodeURIComponent(loop)}`)}`;
    const err = await guardedRequest({
      url: self,
      method: 'POST',
      headers: {},
      policy: new AddressPolicy(allow127002),
      maxRedirects: 1,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(TooManyRedirects);
    expect(err.message).toBe('more than 1 redirects');
  });
});
