import net from 'node:net';

/**
 * A loopback TCP proxy to a local server that cuts, once, the first connection through which
 * `cutAfter` SSE events (`id:` lines) went; every other connection passes untouched. It keeps the
 * bytes of each connection's requests, to see what a client sent when it came back.
 */
export interface CuttingProxy {
  url: string;
  /** Request bytes per connection, in the order connections were made. */
  requests: string[];
  /** True once the cut happened. */
  cut: () => boolean;
  close(): Promise<void>;
}

export async function cuttingProxy(port: number, cutAfter: number): Promise<CuttingProxy> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((client) => {
    const n = requests.push('') - 1;
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (b: Buffer) => {
      requests[n] += b.toString('latin1');
      upstream.write(b);
    });
    let events = 0;
    upstream.on('data', (b: Buffer) => {
      client.write(b);
      events += (b.toString('latin1').match(/^id: /gm) ?? []).length;
      if (!cut && events >= cutAfter) {
        cut = true;
        client.destroy();
        upstream.destroy();
      }
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    cut: () => cut,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
