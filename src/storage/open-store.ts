import path from 'node:path';
import type { BlobStoreConfig } from '../config/blob-store.js';
import { DirectoryObjectStore } from './directory-object-store.js';
import type { ObjectStore } from './object-store.js';
import { S3ObjectStore } from './s3-object-store.js';

/** The object store BLOB_STORE names: DATA_DIR/blobs on this host, or an S3-compatible bucket. */
export function openObjectStore(config: BlobStoreConfig, dataDir: string): ObjectStore {
  const s = config.store;
  if (s.kind === 'dir') return new DirectoryObjectStore(path.join(dataDir, 'blobs'));
  return new S3ObjectStore(s);
}
