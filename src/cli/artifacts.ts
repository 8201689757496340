import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { JettyClient, RunRecord } from './client.js';

export interface DownloadResult {
  saved: { path: string; file: string; size: number }[];
  /** Files not fetched, each with why (over the byte bound, an unsafe path, a checksum mismatch). */
  skipped: { path: string; reason: string }[];
}

/**
 * Fetches a run's artifacts into `dir`, keeping their relative paths. Each file is checked
 * against the record's size and sha256 (written to a temporary name, renamed when it matches); a
 * path that would land outside `dir` is refused; past `maxBytes` in total, files are listed as
 * skipped, not fetched.
 */
export async function downloadArtifacts(
  client: JettyClient,
  run: Pick<RunRecord, 'id' | 'artifacts'>,
  dir: string,
  maxBytes: number,
): Promise<DownloadResult> {
  const result: DownloadResult = { saved: [], skipped: [] };
  const root = path.resolve(dir);
  let total = 0;
  for (const a of run.artifacts) {
    const file = path.resolve(root, ...a.path.split('/'));
    if (!file.startsWith(root + path.sep)) {
      result.skipped.push({ path: a.path, reason: 'its path leads outside the results directory' });
      continue;
    }
    if (total + a.size > maxBytes) {
      result.skipped.push({
        path: a.path,
        reason: `over JETTY_CLI_MAX_DOWNLOAD_BYTES (${maxBytes} bytes per run); fetch it with GET /v1/runs/${run.id}/artifacts/${a.path}`,
      });
      continue;
    }
    total += a.size;
    const problem = await fetchOne(
      client,
      `/v1/runs/${encodeURIComponent(run.id)}/artifacts/${a.path.split('/').map(encodeURIComponent).join('/')}`,
      file,
      a,
    );
    if (problem) result.skipped.push({ path: a.path, reason: problem });
    else result.saved.push({ path: a.path, file, size: a.size });
  }
  return result;
}

async function fetchOne(
  client: JettyClient,
  url: string,
  file: string,
  want: { size: number; sha256: string },
): Promise<string | null> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.part`;
  const hash = createHash('sha256');
  let size = 0;
  const res = await client.download(url);
  // Counting as it streams: a server sending more than the record said is cut off, not believed.
  const check = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > want.size) return cb(new Error(`the server sent more than the recorded ${want.size} bytes`));
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    if (!res.body) throw new Error('the server sent no body');
    await pipeline(Readable.fromWeb(res.body as never), check, createWriteStream(tmp));
  } catch (err) {
    await rm(tmp, { force: true });
    return (err as Error).message;
  }
  const sha = hash.digest('hex');
  if (size !== want.size || sha !== want.sha256) {
    await rm(tmp, { force: true });
    return `got ${size} bytes with sha256 ${sha.slice(0, 12)}…, the record says ${want.size} bytes, ${want.sha256.slice(0, 12)}…`;
  }
  await rename(tmp, file);
  return null;
}
