/**
 * Where the master key comes from: JETTY_MASTER_KEY when set, else a key file in DATA_DIR that
 * the first start writes (0600). The file keeps a single machine working with no setup; several
 * hosts must share one key, so they set JETTY_MASTER_KEY.
 *
 * Redis keeps a check value of the key (an HMAC of a fixed label, never the key): a process whose
 * key differs from the one the secrets were written with refuses to start, and no process makes a
 * new key file once Redis has one recorded. Without it, a CLI run from another directory would
 * encrypt values that the server can never read back.
 */
import { createHmac } from 'node:crypto';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { generateMasterKey, type MasterKey, MasterKeyError, parseMasterKey } from './secrets.js';

export const MASTER_KEY_FILE = 'master.key';

const CHECK_LABEL = 'jetty master key check v1';

export interface LoadedMasterKey {
  key: MasterKey;
  /** Where it came from: the variable, or the file (and whether this start made it). */
  source: 'env' | 'file' | 'new-file';
  file?: string;
}

/** Where the check value lives: the instance's Redis, under its key prefix. */
export interface MasterKeyCheck {
  redis: Redis;
  key: string;
}

export function masterKeyCheckKey(prefix: string): string {
  return `${prefix}:master-key-check`;
}

/** What Redis keeps of the key: it proves a key is the same one, and reveals nothing of it. */
export function masterKeyCheckValue(key: MasterKey): string {
  return `v1:${createHmac('sha256', key.bytes()).update(CHECK_LABEL).digest('hex')}`;
}

const FIX =
  "Set JETTY_MASTER_KEY to the server's key, or DATA_DIR to the server's data directory (the one holding its master.key)";

/**
 * `multiHost`: the run files are in a shared object store (BLOB_STORE=s3://...), so API and
 * workers may be on several hosts: a key file made on this one would be a key no other host has,
 * so none is made and the process is told to set JETTY_MASTER_KEY.
 */
export async function loadMasterKey(
  configured: string | undefined,
  dataDir: string,
  check: MasterKeyCheck,
  opts: { multiHost?: boolean } = {},
): Promise<LoadedMasterKey> {
  const recorded = await check.redis.get(check.key);
  if (configured !== undefined) {
    const loaded: LoadedMasterKey = { key: parseMasterKey(configured), source: 'env' };
    return confirm(loaded, recorded, check);
  }
  const file = path.resolve(dataDir, MASTER_KEY_FILE);
  const existing = await readKeyFile(file);
  if (existing) return confirm({ key: existing, source: 'file', file }, recorded, check);
  if (recorded !== null) {
    throw new MasterKeyError(
      `JETTY_MASTER_KEY is not set and DATA_DIR (${path.resolve(dataDir)}) holds no ${MASTER_KEY_FILE}, but this Redis already has secrets written with a master key: a new key could not read them. ${FIX}.`,
    );
  }
  if (opts.multiHost) {
    throw new MasterKeyError(
      `JETTY_MASTER_KEY is not set. BLOB_STORE is an object store, so API and workers may run on several hosts, and a key file written into DATA_DIR (${path.resolve(dataDir)}) on this one would be unknown to the others. Set JETTY_MASTER_KEY to the same key on every host (\`jetty admin master-key\` prints a new one).`,
    );
  }
  const made = await makeKeyFile(file);
  try {
    return await confirm(made, recorded, check);
  } catch (err) {
    // Another process recorded its own key first: the file just made would only mislead.
    if (made.source === 'new-file') await rm(file, { force: true });
    throw err;
  }
}

/** Records the key's check value if none is, else compares; a different key stops here. */
async function confirm(
  loaded: LoadedMasterKey,
  recorded: string | null,
  check: MasterKeyCheck,
): Promise<LoadedMasterKey> {
  const mine = masterKeyCheckValue(loaded.key);
  let theirs = recorded;
  if (theirs === null) {
    // NX: of two processes starting together on a fresh Redis, one key wins and the other is told.
    const set = await check.redis.set(check.key, mine, 'NX');
    theirs = set === 'OK' ? mine : await check.redis.get(check.key);
  }
  if (theirs === mine) return loaded;
  const from = loaded.source === 'env' ? 'JETTY_MASTER_KEY' : `${loaded.file} (DATA_DIR)`;
  throw new MasterKeyError(
    `the master key from ${from} is not the one this Redis's secrets were written with (its check value is under ${check.key}). ${FIX}.`,
  );
}

async function readKeyFile(file: string): Promise<MasterKey | undefined> {
  try {
    return parseMasterKey(await readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function makeKeyFile(file: string): Promise<LoadedMasterKey> {
  await mkdir(path.dirname(file), { recursive: true });
  try {
    // 'wx': two processes starting together cannot both write a key; the loser reads the winner's.
    const handle = await open(file, 'wx', 0o600);
    try {
      await handle.writeFile(`${generateMasterKey()}\n`);
    } finally {
      await handle.close();
    }
    return { key: parseMasterKey(await readFile(file, 'utf8'), file), source: 'new-file', file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return { key: parseMasterKey(await readFile(file, 'utf8'), file), source: 'file', file };
}
