import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.js';

/**
 * The id of the deployment this Redis and key prefix make up, created once by whichever process
 * asks first. Workers label their sandboxes with it, so that those sharing a Docker engine clean up
 * each other's leftovers, and never those of another deployment that happens to use the same
 * engine (another Redis, or another key prefix).
 */
export async function deploymentId(redis: Redis, keys: RedisKeys): Promise<string> {
  const candidate = `d${randomBytes(8).toString('hex')}`;
  await redis.set(keys.deployment(), candidate, 'NX');
  const id = await redis.get(keys.deployment());
  return id ?? candidate;
}
