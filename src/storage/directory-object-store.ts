import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, constants, copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  assertKey,
  assertPrefix,
  type ByteRange,
  type ObjectBody,
  type ObjectInfo,
  type ObjectStore,
  ObjectStoreError,
} from './object-store.js';

/** Where whole writes are prepared before they are renamed into place; never listed. */
const TMP = '.partial-writes';

/**
 * The object store as a directory on this host (BLOB_STORE=dir, the default): a key is a path
 * under the root. For one machine, or several sharing a file system.
 */
export class DirectoryObjectStore implements ObjectStore {
  readonly root: string;
  readonly name: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.name = `the directory ${this.root}`;
  }

  private file(key: string): string {
    assertKey(key);
    if (key.split('/')[0] === TMP) throw new Error(`invalid object key ${JSON.stringify(key)}`);
    return path.join(this.root, ...key.split('/'));
  }

  /** Writes through a temporary file and a rename: a reader sees the old object or the new one. */
  private async whole(key: string, write: (tmp: string) => Promise<void>): Promise<void> {
    const dest = this.file(key);
    const tmpDir = path.join(this.root, TMP);
    const tmp = path.join(tmpDir, `${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await mkdir(tmpDir, { recursive: true });
      await write(tmp);
      await mkdir(path.dirname(dest), { recursive: true });
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw this.failed('could not be written', err);
    }
  }

  async put(key: string, body: Buffer | string | Readable): Promise<void> {
    const source =
      typeof body === 'string' || Buffer.isBuffer(body) ? Readable.from([Buffer.from(body)]) : body;
    await this.whole(key, (tmp) => pipeline(source, createWriteStream(tmp)));
  }

  async putFile(key: string, file: string): Promise<void> {
    // copyFile may clone (reflink) or copy in the kernel: no bytes pass through this process.
    await this.whole(key, (tmp) => copyFile(file, tmp));
  }

  async get(key: string, range?: ByteRange): Promise<ObjectBody | null> {
    const file = this.file(key);
    const st = await stat(file).catch(() => null);
    if (!st?.isFile()) return null;
    if (range) checkRange(range, st.size);
    const stream = createReadStream(file, range ? { start: range.start, end: range.end } : {});
    return { stream, size: st.size };
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const st = await stat(this.file(key)).catch(() => null);
    return st?.isFile() ? { key, size: st.size, modifiedMs: st.mtimeMs } : null;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertPrefix(prefix);
    const start = prefix === '' ? this.root : this.file(prefix.slice(0, -1));
    yield* this.walk(start, prefix);
  }

  /** Depth first, entries ordered as their keys sort (a directory as its name plus `/`). */
  private async *walk(dir: string, keyPrefix: string): AsyncIterable<ObjectInfo> {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    const named = entries
      .filter((e) => (e.isFile() || e.isDirectory()) && !(keyPrefix === '' && e.name === TMP))
      .map((e) => ({ e, sortKey: Buffer.from(e.isDirectory() ? `${e.name}/` : e.name) }))
      .sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    for (const { e } of named) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        yield* this.walk(full, `${keyPrefix}${e.name}/`);
        continue;
      }
      const st = await stat(full).catch(() => null);
      if (st) yield { key: `${keyPrefix}${e.name}`, size: st.size, modifiedMs: st.mtimeMs };
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    assertPrefix(prefix);
    let n = 0;
    if (prefix === '') {
      for await (const o of this.list('')) {
        await rm(this.file(o.key), { force: true });
        n++;
      }
      return n;
    }
    const dir = this.file(prefix.slice(0, -1));
    if (!(await stat(dir).catch(() => null))?.isDirectory()) return 0;
    for await (const _ of this.list(prefix)) n++;
    await rm(dir, { recursive: true, force: true });
    return n;
  }

  async check(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
      await access(this.root, constants.W_OK | constants.R_OK);
    } catch (err) {
      throw this.failed('cannot be used', err);
    }
  }

  private failed(what: string, err: unknown): ObjectStoreError {
    return new ObjectStoreError(this.name, what, err, {
      retryable: true,
      fix: 'Check that the directory (DATA_DIR/blobs) exists, is writable by the server, and has free space.',
    });
  }
}

export function checkRange(range: ByteRange, size: number): void {
  if (!(range.start >= 0 && range.start <= range.end && range.end < size)) {
    throw new RangeError(`byte range ${range.start}-${range.end} is outside an object of ${size} bytes`);
  }
}
