import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DOCKER_HEADER_BYTES, DOCKER_STDERR } from '../../src/sandbox/frames.js';
import { SupervisorLink } from '../../src/sandbox/supervisor-link.js';

/** What Docker sends for a line the container's main process wrote on its stderr. */
function stderrFrame(text: string): Buffer {
  const body = Buffer.from(text);
  const head = Buffer.alloc(DOCKER_HEADER_BYTES);
  head[0] = DOCKER_STDERR;
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** The container's side of an attached connection, as far as the link reads it. */
function attached(): Duplex {
  return new Duplex({
    read() {},
    write(_chunk, _enc, done) {
      done();
    },
  });
}

describe('the supervisor link', () => {
  it("passes the supervisor's own failures on as they come, and at most 4 KiB of them a sandbox", async () => {
    const socket = attached();
    const heard: string[] = [];
    const link = new SupervisorLink(socket, (text) => heard.push(text));
    socket.push(stderrFrame('jetty-supervisor: cannot kill the processes of 1000: EPERM\n'));
    await new Promise((r) => setImmediate(r));
    expect(heard).toEqual(['jetty-supervisor: cannot kill the processes of 1000: EPERM']);
    for (let i = 0; i < 100; i++) socket.push(stderrFrame(`${'x'.repeat(99)}\n`));
    await new Promise((r) => setImmediate(r));
    expect(heard.join('\n').length).toBeLessThanOrEqual(4096);
    expect(heard.length).toBeLessThan(50);
    link.close();
  });
});
