import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';

const GiB = 1024 ** 3;

describe('sandbox disk and artifact settings', () => {
  it('defaults: 1 GiB of writable space per sandbox, results up to 512 MiB, 256 MiB a file, 1000 files', () => {
    const c = loadConfig({});
    expect(c.sandbox).toMatchObject({ diskBytes: GiB, maxDiskBytes: GiB, memoryBytes: 2 * GiB });
    expect(c.artifacts).toEqual({ maxFiles: 1000, maxBytes: 512 * 1024 ** 2, maxFileBytes: 256 * 1024 ** 2 });
  });

  it('reads sizes and lets a run ask for more up to SANDBOX_MAX_DISK', () => {
    const c = loadConfig({ SANDBOX_DISK: '256m', SANDBOX_MAX_DISK: '1.5g', ARTIFACT_MAX_FILES: '5' });
    expect(c.sandbox).toMatchObject({ diskBytes: 256 * 1024 ** 2, maxDiskBytes: 1.5 * GiB });
    expect(c.artifacts.maxFiles).toBe(5);
  });

  it('per-run maxima default to the per-run defaults; snapshots default to all, lean always served', () => {
    const c = loadConfig({ SANDBOX_CPUS: '2', SANDBOX_MEMORY: '4g' });
    expect(c.sandbox).toMatchObject({ maxCpus: 2, maxMemoryBytes: 4 * GiB, allowCustomImages: true });
    expect(c.sandbox.snapshots).toEqual(['lean', 'python312-uv', 'python312-uv-office', 'prism-playwright']);
    const some = loadConfig({
      SANDBOX_SNAPSHOTS: 'prism-playwright',
      SANDBOX_MAX_CPUS: '4',
      SANDBOX_MAX_MEMORY: '8g',
      SANDBOX_MAX_DISK: '6g',
    });
    expect(some.sandbox).toMatchObject({ maxCpus: 4, maxMemoryBytes: 8 * GiB, maxDiskBytes: 6 * GiB });
    expect(some.sandbox.snapshots).toEqual(['lean', 'prism-playwright']);
  });

  it.each([
    [{ SANDBOX_DISK: '3g' }, /SANDBOX_DISK: must not exceed SANDBOX_MEMORY .*count against it/],
    // A run that asks for more disk must ask for the memory to hold it, up to SANDBOX_MAX_MEMORY.
    [
      { SANDBOX_MAX_DISK: '4g', SANDBOX_MEMORY: '2g' },
      /SANDBOX_MAX_DISK: must not exceed SANDBOX_MAX_MEMORY/,
    ],
    [{ SANDBOX_MAX_MEMORY: '1g' }, /SANDBOX_MAX_MEMORY: must not be below SANDBOX_MEMORY/],
    [{ SANDBOX_CPUS: '2', SANDBOX_MAX_CPUS: '1' }, /SANDBOX_MAX_CPUS: must not be below SANDBOX_CPUS/],
    [{ SANDBOX_SNAPSHOTS: 'lean,gpu' }, /SANDBOX_SNAPSHOTS: unknown snapshot gpu/],
    [{ SANDBOX_DISK: '1g', SANDBOX_MAX_DISK: '512m' }, /SANDBOX_MAX_DISK: must not be below SANDBOX_DISK/],
    [{ SANDBOX_DISK: '10m' }, /SANDBOX_DISK: must be at least 64m/],
    [{ SANDBOX_DISK: 'big' }, /SANDBOX_DISK: must be a size like/],
    [{ ARTIFACT_MAX_BYTES: 'x' }, /ARTIFACT_MAX_BYTES: must be a size like/],
    [{ ARTIFACT_MAX_FILES: '0' }, /ARTIFACT_MAX_FILES: must be a whole number/],
  ])('%j is refused, naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
