/**
 * Where the master key comes from: JETTY_MASTER_KEY when set, else a key file in DATA_DIR that
 * the first start writes (0600). The file keeps a single machine working with no setup; several
 * hosts must share one key, so they set JETTY_MASTER_KEY.
 */
import { mkdir, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { generateMasterKey, type MasterKey, parseMasterKey } from './secrets.js';

export const MASTER_KEY_FILE = 'master.key';

export interface LoadedMasterKey {
  key: MasterKey;
  /** Where it came from: the variable, or the file (and whether this start made it). */
  source: 'env' | 'file' | 'new-file';
  file?: string;
}

export async function loadMasterKey(
  configured: string | undefined,
  dataDir: string,
): Promise<LoadedMasterKey> {
  if (configured !== undefined) return { key: parseMasterKey(configured), source: 'env' };
  const file = path.resolve(dataDir, MASTER_KEY_FILE);
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
