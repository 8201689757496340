#!/usr/bin/env node
// Runs inside every sandbox. The sandbox usually has no network at all, so the provider gateway is
// reached through a unix socket mounted from the worker; agent CLIs only speak TCP, so this
// exposes that socket on 127.0.0.1. Plain Node, no dependencies: it must start in milliseconds.
//
// Env: JETTY_GATEWAY_PORT (default 4100), JETTY_GATEWAY_SOCKET (default /run/jetty/gateway.sock).
// Prints one line "ready" on stdout once it listens (the entrypoint waits for it), and nothing
// else on stdout afterwards. Problems go to stderr, prefixed so they are recognisable in run logs.
//
// getBuiltinModule instead of require/import: the same file runs as CommonJS (in the image) and
// as an ES module (under this repo's package.json, in tests).
const net = process.getBuiltinModule('node:net');

const port = Number(process.env.JETTY_GATEWAY_PORT || 4100);
const socketPath = process.env.JETTY_GATEWAY_SOCKET || '/run/jetty/gateway.sock';

function warn(message) {
  process.stderr.write(`jetty-forwarder: ${message}\n`);
}

if (!Number.isInteger(port) || port < 1 || port > 65535) {
  warn(`invalid JETTY_GATEWAY_PORT ${JSON.stringify(process.env.JETTY_GATEWAY_PORT)}`);
  process.exit(2);
}

let upstreamFailuresReported = 0;

// allowHalfOpen: a client that finishes sending (FIN) still gets the whole (streamed) answer.
const server = net.createServer({ allowHalfOpen: true }, (client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ path: socketPath, allowHalfOpen: true });

  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', closeBoth);
  upstream.on('error', (err) => {
    // Report the first few only: a CLI retrying against a dead gateway must not flood stderr.
    if (upstreamFailuresReported < 5) {
      upstreamFailuresReported += 1;
      warn(`cannot reach the gateway at ${socketPath}: ${err.code || err.message}`);
    }
    closeBoth();
  });
  // pipe() forwards backpressure and the half-closes (end) in each direction.
  client.pipe(upstream);
  upstream.pipe(client);
});

server.on('error', (err) => {
  warn(`cannot listen on 127.0.0.1:${port}: ${err.code || err.message}`);
  process.exit(1);
});

server.listen({ host: '127.0.0.1', port }, () => {
  process.stdout.write('ready\n');
});
