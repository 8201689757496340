/**
 * Uploaded files: kept in the object store under `uploads/<collection>/<upload id>/<path>` (put
 * together in local scratch first, and uploaded only once the whole request was read and
 * unpacked), addressed by the storage key `<collection>/_uploads/<upload id>/<path>`, and put into a run's sandbox at
 * `/app/assets/<path>`. Names are made safe before anything is written: the client's filename is
 * cut to its last path component, characters that mean something to a shell or a file system are
 * replaced, and no segment can be `.` or `..`. A zip is unpacked in place of itself (into a folder
 * named after it), entry by entry under the same rules and within the same size budget.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { AppError, badRequest, quoted } from '../errors.js';
import { inPool } from '../storage/blob-store.js';
import { type ByteRange, type ObjectStore, ObjectTooLargeError, readAll } from '../storage/object-store.js';
import { UPLOADS_TASK } from './trajectory.js';

/** Where uploads appear inside a sandbox. */
export const ASSETS_DIR = '/app/assets';
export const MAX_ZIP_ENTRIES = 2000;
const MAX_NAME = 200;

export interface UploadLimits {
  /** Bytes per uploaded file, and per file unpacked from a zip. */
  maxFileBytes: number;
  /** Files per request. */
  maxFiles: number;
}

export interface SavedUpload {
  upload_id: string;
  /** Storage keys, one per file (a zip's: one per file in it), in upload order. */
  file_paths: string[];
  count: number;
}

/** A safe file name from whatever a client sent; never empty, never `.`/`..`, never with a slash. */
export function sanitizeName(raw: string): string {
  const last = raw.split(/[/\\]/).pop() ?? '';
  const cleaned = last
    .normalize('NFC')
    .replace(/[^\p{L}\p{N}._ +=@,-]/gu, '_')
    .replace(/^[.\s]+/, '')
    .replace(/\s+$/, '')
    .slice(0, MAX_NAME);
  return cleaned === '' ? 'file' : cleaned;
}

/**
 * `rel`, or `rel` with -2, -3, … before its extension: the first whose `key` is not in `taken`,
 * which it is then added to. (Uploads compare names case-folded: a case-insensitive disk would
 * hold `A.txt` and `a.txt` as one file.)
 */
export function claimName(rel: string, taken: Set<string>, key: (name: string) => string = (n) => n): string {
  const ext = path.posix.extname(rel);
  const stem = rel.slice(0, rel.length - ext.length);
  let candidate = rel;
  for (let n = 2; taken.has(key(candidate)); n++) candidate = `${stem}-${n}${ext}`;
  taken.add(key(candidate));
  return candidate;
}

const lowerCase = (name: string) => name.toLowerCase();

/** A path of an upload's files (or a collection name): relative, no `.`/`..`/empty segment. */
function isUploadPath(p: string): boolean {
  return p !== '' && !p.includes('\0') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

export function tooLarge(what: string, limit: number): AppError {
  return new AppError(
    `${what} is larger than this server accepts (${limit} bytes per file). Send a smaller file or raise MAX_UPLOAD_BYTES on the server.`,
    { status: 413, type: 'invalid_request_error', code: 'file_too_large', param: 'files' },
  );
}

export class UploadStore {
  constructor(
    private readonly objects: ObjectStore,
    /** Local scratch space where a request's files are read and unpacked before upload. */
    private readonly scratch: string,
    readonly limits: UploadLimits,
  ) {}

  private prefix(collection: string, uploadId: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(uploadId)) throw new Error('invalid upload id');
    return `uploads/${collection}/${uploadId}/`;
  }

  /** The object behind a key's parts, or null when the path could not be one of an upload's. */
  private keyOf(collection: string, uploadId: string, relPath: string): string | null {
    if (!/^[A-Za-z0-9_-]+$/.test(uploadId) || !isUploadPath(collection) || !isUploadPath(relPath))
      return null;
    return `${this.prefix(collection, uploadId)}${relPath}`;
  }

  /** Whether the upload holds this file (nothing is opened). */
  async has(collection: string, uploadId: string, relPath: string): Promise<boolean> {
    const key = this.keyOf(collection, uploadId, relPath);
    return key !== null && (await this.objects.stat(key)) !== null;
  }

  /** Streams the file (or a range of it; `size` is the whole file's). */
  async open(
    collection: string,
    uploadId: string,
    relPath: string,
    range?: ByteRange,
  ): Promise<{ stream: Readable; size: number } | null> {
    const key = this.keyOf(collection, uploadId, relPath);
    return key ? this.objects.get(key, range) : null;
  }

  /** The file's size, or null when there is no such file. */
  async size(collection: string, uploadId: string, relPath: string): Promise<number | null> {
    const key = this.keyOf(collection, uploadId, relPath);
    return key ? ((await this.objects.stat(key))?.size ?? null) : null;
  }

  async read(collection: string, uploadId: string, relPath: string): Promise<Buffer | null> {
    const file = await this.open(collection, uploadId, relPath);
    if (!file) return null;
    const limit = this.limits.maxFileBytes;
    return readAll(file.stream, limit, (n) => new ObjectTooLargeError(relPath, n, limit, 'MAX_UPLOAD_BYTES'));
  }

  /**
   * Removes uploads made more than `ageMs` ago (by their newest file), so that storage stays
   * bounded like Redis's; a run that names one later is refused with `file_not_found`. Answers how
   * many went.
   */
  async removeOlderThan(ageMs: number, now = Date.now()): Promise<number> {
    let removed = 0;
    // Keys list in order: one upload's files come together.
    let group: { prefix: string; newest: number } | undefined;
    const close = async () => {
      if (!group || now - group.newest <= ageMs) return;
      await this.objects.deletePrefix(group.prefix);
      removed++;
    };
    for await (const o of this.objects.list('uploads/')) {
      const prefix = `${o.key.split('/').slice(0, 3).join('/')}/`;
      if (group?.prefix !== prefix) {
        await close();
        group = { prefix, newest: 0 };
      }
      group.newest = Math.max(group.newest, o.modifiedMs);
    }
    await close();
    return removed;
  }

  /**
   * Saves a request's files as one upload. `files` yields each file part as the multipart parser
   * hands it over; a part over the size limit (the parser marks it truncated) fails the whole
   * upload, and nothing of it is kept.
   */
  async save(
    collection: string,
    files: AsyncIterable<{ filename: string; stream: Readable & { truncated?: boolean } }>,
    opts: { allowEmpty?: boolean } = {},
  ): Promise<SavedUpload | null> {
    const uploadId = randomBytes(8).toString('hex');
    const prefix = this.prefix(collection, uploadId);
    const dir = path.join(this.scratch, 'uploads', uploadId);
    const keys: string[] = [];
    const stored: string[] = [];
    const used = new Set<string>();
    const unique = (rel: string) => claimName(rel, used, lowerCase);
    const key = (rel: string) =>
      `${encodeURIComponent(collection)}/${UPLOADS_TASK}/${uploadId}/${rel.split('/').map(encodeURIComponent).join('/')}`;
    try {
      await mkdir(dir, { recursive: true });
      let count = 0;
      for await (const file of files) {
        if (++count > this.limits.maxFiles) {
          file.stream.resume();
          throw new AppError(`At most ${this.limits.maxFiles} files per request.`, {
            status: 413,
            type: 'invalid_request_error',
            code: 'too_many_files',
            param: 'files',
          });
        }
        const name = sanitizeName(file.filename);
        const tmp = path.join(dir, `.part-${count}`);
        await pipeline(file.stream, createWriteStream(tmp));
        if (file.stream.truncated) throw tooLarge(`The file ${quoted(name, 200)}`, this.limits.maxFileBytes);
        if (/\.zip$/i.test(name)) {
          const folder = unique(name.replace(/\.zip$/i, '') || 'archive');
          for (const rel of await this.unzip(tmp, path.join(dir, folder), name)) {
            keys.push(key(`${folder}/${rel}`));
            stored.push(`${folder}/${rel}`);
          }
          await rm(tmp);
        } else {
          const rel = unique(name);
          await rm(path.join(dir, rel), { force: true });
          await rename(tmp, path.join(dir, rel));
          keys.push(key(rel));
          stored.push(rel);
        }
      }
      if (keys.length === 0) {
        if (opts.allowEmpty) return null;
        throw badRequest('No files: send one or more multipart parts named "files".', 'files', 'no_files');
      }
      // Only a whole request is stored: no key is handed out before every file is in the store.
      await inPool(stored, 4, (rel) =>
        this.objects.putFile(`${prefix}${rel}`, path.join(dir, ...rel.split('/'))),
      );
      return { upload_id: uploadId, file_paths: keys, count: keys.length };
    } catch (err) {
      if (stored.length > 0) await this.objects.deletePrefix(prefix).catch(() => 0);
      throw err;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Unpacks a zip's regular files under `dest`, each name segment made safe; returns their paths. */
  private async unzip(zipPath: string, dest: string, zipName: string): Promise<string[]> {
    const bad = (why: string) =>
      badRequest(`The zip ${quoted(zipName, 200)} cannot be unpacked: ${why}.`, 'files', 'invalid_zip');
    let zip: yauzl.ZipFile;
    try {
      zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
        yauzl.open(
          zipPath,
          { lazyEntries: true, validateEntrySizes: true, strictFileNames: false },
          (e, z) => (e ? reject(e) : resolve(z)),
        ),
      );
    } catch (e) {
      throw bad((e as Error).message);
    }
    const out: string[] = [];
    const used = new Set<string>();
    try {
      await new Promise<void>((resolve, reject) => {
        let entries = 0;
        // All of a zip together gets what a whole request of files would: no small zip unpacks huge.
        let budget = this.limits.maxFileBytes * this.limits.maxFiles;
        zip.on('error', (e: Error) => reject(bad(e.message)));
        zip.on('end', () => resolve());
        zip.on('entry', (entry: yauzl.Entry) => {
          void (async () => {
            if (++entries > MAX_ZIP_ENTRIES) throw bad(`it has more than ${MAX_ZIP_ENTRIES} entries`);
            const isDir = entry.fileName.endsWith('/');
            // Unix mode in the high 16 bits: only regular files (0o100000) or no mode at all.
            const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
            if (isDir || (mode !== 0 && mode !== 0o100000)) return zip.readEntry();
            if (entry.uncompressedSize > this.limits.maxFileBytes) {
              throw tooLarge(
                `${quoted(entry.fileName, 200)} in ${quoted(zipName, 200)}`,
                this.limits.maxFileBytes,
              );
            }
            budget -= entry.uncompressedSize;
            if (budget < 0)
              throw bad(`it unpacks to more than ${this.limits.maxFileBytes * this.limits.maxFiles} bytes`);
            const segments = entry.fileName.split(/[/\\]/).filter((s) => s !== '' && s !== '.' && s !== '..');
            if (segments.length === 0) return zip.readEntry();
            const rel = claimName(segments.map(sanitizeName).join('/'), used, lowerCase);
            const target = path.join(dest, rel);
            if (!target.startsWith(dest + path.sep)) throw bad('an entry would land outside its folder');
            await mkdir(path.dirname(target), { recursive: true });
            const stream = await new Promise<Readable>((res, rej) =>
              zip.openReadStream(entry, (e, s) => (e ? rej(bad(e.message)) : res(s))),
            );
            await pipeline(stream, createWriteStream(target));
            out.push(rel);
            zip.readEntry();
          })().catch(reject);
        });
        zip.readEntry();
      });
    } finally {
      zip.close();
    }
    if (out.length === 0) throw bad('it holds no files');
    return out;
  }
}
