/**
 * Encryption at rest of a collection's environment variables.
 *
 * AES-256-GCM under a 32-byte master key from configuration, a fresh random 12-byte IV per value,
 * and the collection and variable name as additional authenticated data: a ciphertext copied to
 * another collection or another name does not decrypt. Each value is stored as a versioned
 * envelope, `v1:<iv>:<tag>:<ciphertext>` (base64url parts), so a later version can add a key id
 * and rotate the master key without guessing what an old value is.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { AppError } from '../errors.js';

const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const ENVELOPE_VERSION = 'v1';

/**
 * The master key. It never shows itself: logging or serialising it prints a placeholder, so a
 * config object that holds it can be logged safely.
 */
export class MasterKey {
  readonly #bytes: Buffer;

  constructor(bytes: Buffer) {
    if (bytes.length !== KEY_BYTES) {
      throw new Error(`A master key is ${KEY_BYTES} bytes; got ${bytes.length}.`);
    }
    this.#bytes = Buffer.from(bytes);
  }

  /** For the cipher only. */
  bytes(): Buffer {
    return this.#bytes;
  }

  toString(): string {
    return '[MasterKey]';
  }
  toJSON(): string {
    return '[MasterKey]';
  }
  [inspect.custom](): string {
    return '[MasterKey]';
  }
}

export class MasterKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasterKeyError';
  }
}

const HEX_64 = /^[0-9a-fA-F]{64}$/;
// 32 bytes in base64 are 43 characters and one "=" (optional here), in either alphabet.
const BASE64_32 = /^[A-Za-z0-9+/]{43}=?$/;
const BASE64URL_32 = /^[A-Za-z0-9_-]{43}$/;

/**
 * Reads a master key given as 64 hex digits or as base64/base64url of 32 bytes. The error names
 * `variable` and says how to make a good key; it never repeats what was given.
 */
export function parseMasterKey(text: string, variable = 'JETTY_MASTER_KEY'): MasterKey {
  const value = text.trim();
  const how = `Generate one with: openssl rand -base64 32`;
  if (value === '') throw new MasterKeyError(`${variable} is empty: it must be a 32-byte key. ${how}`);
  if (HEX_64.test(value)) return new MasterKey(Buffer.from(value, 'hex'));
  if (BASE64_32.test(value)) return new MasterKey(Buffer.from(value, 'base64'));
  if (BASE64URL_32.test(value)) return new MasterKey(Buffer.from(value, 'base64url'));
  throw new MasterKeyError(
    `${variable} must be 32 bytes written as 64 hex digits or as base64 (44 characters ending in "="); ` +
      `got ${value.length} characters that are neither. ${how}`,
  );
}

/** A new random master key, in the base64 form `parseMasterKey` reads. */
export function generateMasterKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** What a value is bound to. Changing either makes its ciphertext undecryptable. */
export interface SecretContext {
  collection: string;
  name: string;
}

// JSON keeps the binding unambiguous whatever characters the two names hold; the label keeps a
// value encrypted for this purpose from being accepted as anything else made with the same key.
function aadOf(ctx: SecretContext): Buffer {
  return Buffer.from(JSON.stringify(['jetty.env', ctx.collection, ctx.name]), 'utf8');
}

export interface Envelope {
  version: typeof ENVELOPE_VERSION;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function part(text: string, what: string, bytes?: number): Buffer {
  if (!B64URL.test(text)) throw new EnvelopeError(`The ${what} of the envelope is not base64url.`);
  const buf = Buffer.from(text, 'base64url');
  // Node's decoder skips what it cannot read; a round trip shows whether anything was skipped.
  if (buf.toString('base64url') !== text) {
    throw new EnvelopeError(`The ${what} of the envelope is not canonical base64url.`);
  }
  if (bytes !== undefined && buf.length !== bytes) {
    throw new EnvelopeError(`The ${what} of the envelope is ${buf.length} bytes; it must be ${bytes}.`);
  }
  return buf;
}

export function formatEnvelope(e: Envelope): string {
  return [e.version, e.iv, e.tag, e.ciphertext]
    .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
    .join(':');
}

/** Splits and checks an envelope; throws EnvelopeError saying which part is wrong. */
export function parseEnvelope(text: string): Envelope {
  const parts = text.split(':');
  const version = parts[0];
  if (version !== ENVELOPE_VERSION) {
    // The text is not repeated: a value stored in plain text by mistake would end up in a log.
    throw new EnvelopeError(
      `It does not start with "${ENVELOPE_VERSION}:", the only version this server reads.`,
    );
  }
  if (parts.length !== 4) {
    throw new EnvelopeError(`A ${ENVELOPE_VERSION} envelope has 4 parts; this one has ${parts.length}.`);
  }
  return {
    version,
    iv: part(parts[1]!, 'IV', IV_BYTES),
    tag: part(parts[2]!, 'tag', TAG_BYTES),
    ciphertext: part(parts[3]!, 'ciphertext'),
  };
}

export function encryptValue(key: MasterKey, ctx: SecretContext, plaintext: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key.bytes(), iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aadOf(ctx));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return formatEnvelope({ version: ENVELOPE_VERSION, iv, tag: cipher.getAuthTag(), ciphertext });
}

/**
 * Decrypts a stored value. A wrong master key, a tampered or moved ciphertext and a malformed
 * envelope all throw the same 500: the stored value cannot be used, and retrying will not help.
 * The message names the variable, never a value.
 */
export function decryptValue(key: MasterKey, ctx: SecretContext, envelope: string): string {
  let reason: string;
  try {
    const e = parseEnvelope(envelope);
    const decipher = createDecipheriv(ALGORITHM, key.bytes(), e.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aadOf(ctx));
    decipher.setAuthTag(e.tag);
    return Buffer.concat([decipher.update(e.ciphertext), decipher.final()]).toString('utf8');
  } catch (err) {
    reason =
      err instanceof EnvelopeError
        ? `its stored form is damaged (${err.message})`
        : 'it was encrypted with another master key, or its stored value was altered or moved';
  }
  throw new AppError(
    `The environment variable ${ctx.name} of collection ${ctx.collection} cannot be decrypted: ${reason}. ` +
      'Check that the server runs with the master key it had when the value was set, or set the variable again.',
    { status: 500, type: 'server_error', code: 'secret_undecryptable', param: ctx.name },
  );
}
