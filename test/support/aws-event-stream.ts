import { crc32 } from 'node:zlib';

/**
 * Encodes messages in the AWS event stream framing (`application/vnd.amazon.eventstream`), as
 * Bedrock's streaming answers are sent: total length and headers length (u32 BE), a CRC32 of
 * those 8 bytes, the headers (name length u8, name, type 7 = string, value length u16, value),
 * the payload, and a CRC32 of everything before it.
 */
export function eventStreamMessage(headers: Record<string, string>, payload: Uint8Array): Buffer {
  const headerBytes = Buffer.concat(
    Object.entries(headers).map(([name, value]) => {
      const n = Buffer.from(name, 'utf8');
      const v = Buffer.from(value, 'utf8');
      const h = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
      h.writeUInt8(n.length, 0);
      n.copy(h, 1);
      h.writeUInt8(7, 1 + n.length);
      h.writeUInt16BE(v.length, 2 + n.length);
      v.copy(h, 4 + n.length);
      return h;
    }),
  );
  const total = 12 + headerBytes.length + payload.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(headerBytes.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  headerBytes.copy(out, 12);
  Buffer.from(payload).copy(out, 12 + headerBytes.length);
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4);
  return out;
}

/** One Bedrock stream event (`:message-type: event`) with a JSON payload. */
export function bedrockEvent(eventType: string, payload: unknown): Buffer {
  return eventStreamMessage(
    { ':event-type': eventType, ':content-type': 'application/json', ':message-type': 'event' },
    Buffer.from(JSON.stringify(payload), 'utf8'),
  );
}
