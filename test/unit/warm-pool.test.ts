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

// A taken sandbox's replacement waits until its run got going: making one while the CLI that just
// got its prompt works took the CPU from it. Without Docker: a driver that counts prepares.
describe('warm pool refill after a take', () => {
  function countingDriver(order: string[]): { driver: SandboxDriver; prepared: () => number } {
    let n = 0;
    const driver = {
      prepare: async () => {
        n++;
        const id = `c${n}`;
        return {
          id,
          startForwarder: async () => undefined,
          startAgent: async () => ({
            exited: false,
            sandbox: { id } as never,
            giveInput: () => order.push(`input ${id}`),
          }),
          placeFiles: async () => undefined,
          bindToRun: async () => {
            order.push(`bind ${id}`);
          },
          remove: async () => undefined,
        };
      },
    } as unknown as SandboxDriver;
    return { driver, prepared: () => n };
  }

  /** A pool of one sandbox per key, well within its memory budget. */
  function onePool(driver: SandboxDriver): WarmPool {
    return new WarmPool({
      driver,
      worker: 'w',
      size: 1,
      memoryBytes: 4 * GIB,
      idleMs: 0,
      template: () => template(GIB),
      logger: { debug: () => undefined, warn: () => undefined },
    });
  }

  async function settle(): Promise<void> {
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  }

  it('refills when the run says it got going, not when it takes the sandbox', async () => {
    const order: string[] = [];
    const { driver, prepared } = countingDriver(order);
    const pool = onePool(driver);
    pool.want('x@img');
    await settle();
    expect(prepared()).toBe(1);
    const w = pool.take('x@img');
    expect(w).toBeDefined();
    if (!w) throw new Error('no warm sandbox');
    await pool.claim(w, 'run-1', [], 'prompt');
    // The prompt goes in before the sandbox is renamed for its run.
    expect(order).toEqual(['input c1', 'bind c1']);
    await settle();
    expect(prepared()).toBe(1);
    pool.refill('x@img');
    await settle();
    expect(prepared()).toBe(2);
    await pool.close();
  });

  it('refills at once when a run found none ready', async () => {
    const { driver, prepared } = countingDriver([]);
    const pool = onePool(driver);
    expect(pool.take('x@img')).toBeUndefined();
    await settle();
    expect(prepared()).toBe(1);
    await pool.close();
  });
});
