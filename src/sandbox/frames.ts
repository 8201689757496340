/**
 * Splits a byte stream of length-prefixed frames, whose header ends with the payload's length (u32
 * BE): Docker's multiplexed stdout/stderr (8 bytes: stream, 3 unused, length) and the sandbox
 * supervisor's frames (9 bytes: type, process id, length; src/sandbox/supervisor.ts). A frame cut
 * across chunks is held until the rest arrives; header and payload are views of the chunks.
 */
export class FrameSplitter {
  private pending: Buffer = Buffer.alloc(0);

  constructor(
    private readonly headerBytes: number,
    private readonly onFrame: (header: Buffer, payload: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const h = this.headerBytes;
    let at = 0;
    while (this.pending.length - at >= h) {
      const size = this.pending.readUInt32BE(at + h - 4);
      if (this.pending.length - at - h < size) break;
      this.onFrame(this.pending.subarray(at, at + h), this.pending.subarray(at + h, at + h + size));
      at += h + size;
    }
    this.pending = this.pending.subarray(at);
  }
}

/** Docker's header: byte 0 is the stream (1 stdout, 2 stderr). */
export const DOCKER_HEADER_BYTES = 8;
export const DOCKER_STDERR = 2;
