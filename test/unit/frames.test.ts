import { describe, expect, it } from 'vitest';
import { DOCKER_HEADER_BYTES, FrameSplitter } from '../../src/sandbox/frames.js';
import { FRAME, FRAME_HEADER_BYTES, frame } from '../../src/sandbox/supervisor.js';

describe('FrameSplitter', () => {
  it('gives the supervisor frames whole, however the stream is cut', () => {
    const bytes = Buffer.concat([
      frame(FRAME.stdout, 7, Buffer.from('hello')),
      frame(FRAME.exit, 7, Buffer.from([0, 0, 0, 3])),
      frame(FRAME.stderr, 8),
    ]);
    for (const cut of [1, 4, 9, 13, bytes.length]) {
      const seen: string[] = [];
      const split = new FrameSplitter(FRAME_HEADER_BYTES, (head, payload) =>
        seen.push(
          `${String.fromCharCode(head[0] as number)}${head.readUInt32BE(1)}:${payload.toString('hex')}`,
        ),
      );
      for (let at = 0; at < bytes.length; at += cut) split.push(bytes.subarray(at, at + cut));
      expect(seen).toEqual(['O7:68656c6c6f', 'X7:00000003', 'R8:']);
    }
  });

  it("reads Docker's 8-byte headers: the stream in the first byte, the length in the last four", () => {
    const docker = (stream: number, text: string) => {
      const head = Buffer.alloc(DOCKER_HEADER_BYTES);
      head[0] = stream;
      head.writeUInt32BE(Buffer.byteLength(text), 4);
      return Buffer.concat([head, Buffer.from(text)]);
    };
    const seen: string[] = [];
    const split = new FrameSplitter(DOCKER_HEADER_BYTES, (head, payload) =>
      seen.push(`${head[0]}:${payload}`),
    );
    const bytes = Buffer.concat([docker(1, 'out'), docker(2, 'err')]);
    split.push(bytes.subarray(0, 10));
    expect(seen).toEqual([]);
    split.push(bytes.subarray(10));
    expect(seen).toEqual(['1:out', '2:err']);
  });
});
