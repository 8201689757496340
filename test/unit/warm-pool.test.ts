import { describe, expect, it } from 'vitest';
import type { SandboxDriver } from '../../src/sandbox/driver.js';
import { WarmPool, type WarmTemplate } from '../../src/sandbox/warm-pool.js';

// The pool's memory budget, without Docker: a template larger than WARM_POOL_MEMORY is never
// started (the driver is never asked), runs of its key start cold, and the operator is told once.
const GIB = 1024 ** 3;

function template(memoryBytes: number): WarmTemplate {
  return {
    environment: {
      image: 'jetty/env-x:1',
      agentImage: 'jetty/agent-x:1',
      limits: { cpus: 1, memoryBytes, pids: 64, diskBytes: GIB },
      gatewaySocketDir: '/tmp/gw',
      files: [],
    },
    agent: { argv: ['x'], env: {}, files: [] },
    forwarderEnv: {},
    token: 't',
    signature: 's',
  } as WarmTemplate;
}

describe('warm pool memory budget', () => {
  it('keeps no sandbox over WARM_POOL_MEMORY and says so once per key', async () => {
    const warned: string[] = [];
    let prepared = 0;
    const driver = {
      prepare: async () => {
        prepared++;
        throw new Error('not reached');
      },
    } as unknown as SandboxDriver;
    const pool = new WarmPool({
      driver,
      worker: 'w',
      size: 2,
      memoryBytes: GIB,
      idleMs: 0,
      template: () => template(2 * GIB),
      logger: { debug: () => undefined, warn: (_o, msg) => warned.push(msg ?? '') },
    });
    pool.want('x@img');
    pool.want('x@img');
    expect(pool.take('x@img')).toBeUndefined();
    expect(prepared).toBe(0);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain('WARM_POOL_MEMORY');
    await pool.close();
  });
});
