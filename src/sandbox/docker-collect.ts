import { createHash } from 'node:crypto';
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import tar from 'tar-stream';
import { AppError, badRequest } from '../errors.js';
import type { DroppedArtifact } from '../events/types.js';
import { LAYER_SHELL, LAYER_TOOLS } from './agent-volume.js';
import { type ListedFile, planCollection } from './collect-plan.js';
import { type ProcessStarter, toAppError } from './docker-exec.js';
import type { CollectedArtifact, CollectLimits, CollectResult } from './driver.js';
import { SANDBOX_GID, SANDBOX_UID } from './layout.js';

/**
 * Copies a directory's regular files out of a running sandbox, in one process inside it (as the
 * sandbox user, so it sees the tmpfs mounts, which the engine's archive API does not): it lists
 * the files (find), waits for the names to send (chosen here within the limits, smallest first),
 * then writes one tar of exactly those. Nothing the sandbox says is trusted: names, sizes and
 * entry types are checked against the plan again while the archive is unpacked.
 */

const USER = `${SANDBOX_UID}:${SANDBOX_GID}`;
/** The listing is kept up to this many bytes (about 200,000 names); the rest is reported dropped. */
export const MAX_LISTING_BYTES = 16 * 1024 * 1024;
const MISSING_DIR_EXIT = 3;
/** Ends the listing: find's records all start with a digit, so this one cannot be a file. */
const END_OF_LISTING = Buffer.from('\0END\0');

// First, whatever the agent left running is killed (kill -1 spares the caller): nothing may change
// the files while they are read. find -P (the default) never follows a link, the start point
// included; NUL-separated records let any name through. A leading NUL makes the end marker whole
// even after an empty listing.
const SCRIPT = [
  'kill -9 -1 2>/dev/null',
  `test -d "$1" || exit ${MISSING_DIR_EXIT}`,
  "printf '\\0'",
  `${LAYER_TOOLS}/find "$1" -type f -printf '%s %P\\0'`,
  "printf 'END\\0'",
  `exec ${LAYER_TOOLS}/tar -c -f - -C "$1" --no-recursion --null --verbatim-files-from -T -`,
].join('\n');

export async function collectDirectory(
  start: ProcessStarter,
  dir: string,
  destDir: string,
  limits: CollectLimits,
): Promise<CollectResult> {
  const source = path.posix.normalize(dir).replace(/\/+$/, '');
  if (!source.startsWith('/') || source === '') {
    throw badRequest(`cannot collect ${JSON.stringify(dir)}: an absolute directory is needed`, 'dir');
  }
  const proc = await start({
    argv: [...LAYER_SHELL, '-c', SCRIPT, 'sh', source],
    user: USER,
    keepStdinOpen: true,
  });
  const stderr = readSome(proc.stderr);
  try {
    const head = await readListing(proc.stdout);
    if (head === null) {
      const code = await proc.exit;
      if (code === MISSING_DIR_EXIT) return { artifacts: [], dropped: [] };
      throw infra(`listing ${source} in the sandbox failed (exit ${code}): ${(await stderr).trim()}`);
    }
    const listing = parseListing(head.listing, head.cut);
    const plan = planCollection(listing.files, limits);
    const dropped = [...listing.dropped, ...plan.dropped];
    proc.input.end(Buffer.from(plan.keep.map((f) => `${f.path}\0`).join('')));
    const root = path.resolve(destDir);
    await mkdir(root, { recursive: true });
    const artifacts = await unpack(head.rest, plan.keep, root);
    // tar exits 2 when a file cannot be read and archives the rest: those are reported as dropped.
    const code = await proc.exit;
    if (code !== 0 && code !== 2)
      throw infra(`tar of ${source} failed (exit ${code}): ${(await stderr).trim()}`);
    const got = new Set(artifacts.map((a) => a.path));
    for (const f of plan.keep) if (!got.has(f.path)) dropped.push({ ...f, reason: 'unreadable' });
    artifacts.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { artifacts, dropped };
  } catch (err) {
    proc.detach();
    throw toAppError(err, `could not copy ${source} out of the sandbox`);
  }
}

/**
 * Reads the listing up to its end marker: what came before it (kept up to MAX_LISTING_BYTES, the
 * rest read and dropped, so that find can finish), and a stream of what follows (the tar). Null
 * when the output ended without the marker (no such directory, or the process failed).
 */
export function readListing(
  stdout: PassThrough,
): Promise<{ listing: Buffer; cut: boolean; rest: PassThrough } | null> {
  return new Promise((resolve, reject) => {
    const kept: Buffer[] = [];
    let size = 0;
    let cut = false;
    const keep = (b: Buffer) => {
      if (size + b.length > MAX_LISTING_BYTES) cut = true;
      const part = b.subarray(0, Math.max(0, MAX_LISTING_BYTES - size));
      kept.push(part);
      size += part.length;
    };
    // Bytes not yet kept: the start of a marker may be at their end.
    let pending: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      const at = pending.indexOf(END_OF_LISTING);
      if (at === -1) {
        const safe = pending.length - (END_OF_LISTING.length - 1);
        if (safe > 0) {
          keep(pending.subarray(0, safe));
          pending = pending.subarray(safe);
        }
        return;
      }
      // The marker's first NUL ends the last record.
      keep(pending.subarray(0, at + 1));
      stdout.off('data', onData);
      stdout.off('end', onEnd);
      stdout.off('error', reject);
      const rest = new PassThrough();
      rest.write(pending.subarray(at + END_OF_LISTING.length));
      stdout.pipe(rest);
      resolve({ listing: Buffer.concat(kept), cut, rest });
    };
    const onEnd = () => resolve(null);
    stdout.on('data', onData);
    stdout.once('end', onEnd);
    stdout.once('error', reject);
  });
}

/** `<size> <path>\0` records. Names that are not UTF-8 cannot be named in a run's record. */
export function parseListing(buf: Buffer, cut: boolean): { files: ListedFile[]; dropped: DroppedArtifact[] } {
  const files: ListedFile[] = [];
  const dropped: DroppedArtifact[] = [];
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  for (let end = buf.indexOf(0, start); end !== -1; end = buf.indexOf(0, start)) {
    const rec = buf.subarray(start, end);
    start = end + 1;
    const space = rec.indexOf(0x20);
    const size = Number(rec.subarray(0, space).toString('latin1'));
    if (space <= 0 || !Number.isSafeInteger(size)) continue;
    let name: string;
    try {
      name = decoder.decode(rec.subarray(space + 1));
    } catch {
      dropped.push({ path: rec.subarray(space + 1).toString('utf8'), size, reason: 'bad_name' });
      continue;
    }
    if (name === '' || name.split('/').includes('..')) continue;
    files.push({ path: name, size });
  }
  if (cut) dropped.push({ path: '(the rest of the listing)', size: 0, reason: 'listing_too_long' });
  return { files, dropped };
}

/** Unpacks the tar of the chosen files into root. Entries that do not match the plan are skipped. */
async function unpack(archive: PassThrough, keep: ListedFile[], root: string): Promise<CollectedArtifact[]> {
  const planned = new Map(keep.map((f) => [f.path, f.size]));
  const artifacts: CollectedArtifact[] = [];
  const extract = tar.extract();
  archive.on('error', (err: Error) => extract.destroy(err));
  archive.pipe(extract);
  for await (const entry of extract) {
    const size = planned.get(entry.header.name);
    const ok = entry.header.type === 'file' && size !== undefined && (entry.header.size ?? 0) === size;
    if (!ok) {
      entry.resume();
      continue;
    }
    planned.delete(entry.header.name);
    artifacts.push(
      await writeEntry(entry as unknown as AsyncIterable<Buffer>, entry.header.name, size, root),
    );
  }
  // tar pads its output; what follows the archive's end is read and dropped.
  archive.resume();
  return artifacts;
}

/** Writes one entry, counting and hashing; a file that breaks off is removed, not left partial. */
async function writeEntry(
  entry: AsyncIterable<Buffer>,
  rel: string,
  size: number,
  root: string,
): Promise<CollectedArtifact> {
  const localPath = path.join(root, ...rel.split('/'));
  if (!localPath.startsWith(root + path.sep)) throw infra(`refusing to write ${rel} outside ${root}`);
  await mkdir(path.dirname(localPath), { recursive: true });
  const hash = createHash('sha256');
  let written = 0;
  const file = await open(localPath, 'w');
  try {
    for await (const chunk of entry) {
      written += chunk.length;
      if (written > size) throw infra(`${rel} grew past its listed ${size} bytes while it was copied`);
      hash.update(chunk);
      await file.write(chunk);
    }
  } catch (err) {
    await file.close();
    await rm(localPath, { force: true });
    throw err;
  }
  await file.close();
  return { path: rel, size: written, sha256: hash.digest('hex'), content_type: contentType(rel), localPath };
}

async function readSome(stream: NodeJS.ReadableStream, max = 4096): Promise<string> {
  let out = '';
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (out.length < max) out += chunk.toString('utf8').slice(0, max - out.length);
  }
  return out;
}

function infra(message: string): AppError {
  return new AppError(message, {
    status: 500,
    type: 'server_error',
    code: 'collect_failed',
    retryable: false,
  });
}

const CONTENT_TYPES: Record<string, string> = {
  txt: 'text/plain',
  log: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  tsv: 'text/tab-separated-values',
  html: 'text/html',
  htm: 'text/html',
  css: 'text/css',
  js: 'text/javascript',
  mjs: 'text/javascript',
  ts: 'text/plain',
  py: 'text/x-python',
  sh: 'text/x-shellscript',
  json: 'application/json',
  jsonl: 'application/x-ndjson',
  ndjson: 'application/x-ndjson',
  xml: 'application/xml',
  yaml: 'application/yaml',
  yml: 'application/yaml',
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  tar: 'application/x-tar',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
  mp4: 'video/mp4',
};

export function contentType(filePath: string): string {
  const ext = path.posix.extname(filePath).slice(1).toLowerCase();
  return CONTENT_TYPES[ext] ?? 'application/octet-stream';
}
