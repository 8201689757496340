import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';

describe('warm pool settings', () => {
  it('defaults: on, 2 per runtime and image, 4 GiB, 10 min idle, claude-code only', () => {
    expect(loadConfig({}).warmPool).toEqual({
      size: 2,
      memoryBytes: 4 * 1024 ** 3,
      idleSec: 600,
      runtimes: ['claude-code'],
    });
  });

  it('reads a list of runtimes, and "none" or size 0 for off', () => {
    const c = loadConfig({
      WARM_POOL_RUNTIMES: 'codex, gemini-cli',
      WARM_POOL_SIZE: '0',
      WARM_POOL_MEMORY: '8g',
    });
    expect(c.warmPool).toMatchObject({
      size: 0,
      memoryBytes: 8 * 1024 ** 3,
      runtimes: ['codex', 'gemini-cli'],
    });
    expect(loadConfig({ WARM_POOL_RUNTIMES: 'none' }).warmPool.runtimes).toEqual([]);
  });

  it.each([
    [{ WARM_POOL_RUNTIMES: 'claude,codex' }, /WARM_POOL_RUNTIMES: must be runtimes .*got "claude"/],
    [{ WARM_POOL_SIZE: '-1' }, /WARM_POOL_SIZE/],
    [{ WARM_POOL_MEMORY: 'lots' }, /WARM_POOL_MEMORY: must be a size like/],
  ])('%j is refused, naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
