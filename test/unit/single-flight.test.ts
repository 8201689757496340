import { describe, expect, it } from 'vitest';
import { singleFlight } from '../../src/single-flight.js';

/** A read whose answers the test releases by hand, counting the calls that reached it. */
function gatedRead() {
  const calls: string[] = [];
  const pending: { key: string; settle: (ok: boolean) => void }[] = [];
  const read = (key: string) => {
    calls.push(key);
    return new Promise<string>((resolve, reject) => {
      pending.push({
        key,
        settle: (ok) => (ok ? resolve(`${key}#${calls.length}`) : reject(new Error(key))),
      });
    });
  };
  return { calls, pending, read };
}

describe('singleFlight', () => {
  it('calls with one key while a read is in flight share it; other keys read on their own', async () => {
    const g = gatedRead();
    const shared = singleFlight(g.read);
    const a = [shared('run-a'), shared('run-a'), shared('run-a')];
    const b = shared('run-b');
    expect(g.calls).toEqual(['run-a', 'run-b']);
    for (const p of g.pending) p.settle(true);
    expect(await Promise.all(a)).toEqual(['run-a#2', 'run-a#2', 'run-a#2']);
    expect(await b).toBe('run-b#2');
  });

  it('keeps nothing once answered: the next call reads again', async () => {
    const g = gatedRead();
    const shared = singleFlight(g.read);
    const first = shared('k');
    g.pending[0]!.settle(true);
    await first;
    const second = shared('k');
    expect(g.calls).toEqual(['k', 'k']);
    g.pending[1]!.settle(true);
    expect(await second).toBe('k#2');
  });

  it('a failure reaches every caller that shared it, and is not kept either', async () => {
    const g = gatedRead();
    const shared = singleFlight(g.read);
    const both = [shared('k'), shared('k')];
    g.pending[0]!.settle(false);
    for (const p of both) await expect(p).rejects.toThrow('k');
    const again = shared('k');
    g.pending[1]!.settle(true);
    expect(await again).toBe('k#2');
  });
});
