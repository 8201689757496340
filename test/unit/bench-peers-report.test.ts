import { describe, expect, it } from 'vitest';
import { groupOf } from '../../bench/cpu.js';
import {
  type ConcurrentTotals,
  perMinute,
  perRun,
  ratio,
  renderVsPeers,
  roundOrder,
  throughput,
  type VsPeersResult,
} from '../../bench/peers-report.js';

// What `npm run bench -- --vs-bare` prints is only as good as these: the order that keeps a peer
// from always following another, the ratios and rates, and which process a CPU second is put on.

describe('rounds and ratios', () => {
  it('rotates the peers so each goes first once every three rounds', () => {
    const peers = ['server', 'bare', 'proxy'];
    expect([1, 2, 3, 4].map((r) => roundOrder(peers, r))).toEqual([
      ['server', 'bare', 'proxy'],
      ['bare', 'proxy', 'server'],
      ['proxy', 'server', 'bare'],
      ['server', 'bare', 'proxy'],
    ]);
  });

  it('gives ratios with two decimals, and a dash when either side is missing or zero', () => {
    expect(ratio(707, 1149)).toBe('0.62×');
    expect(ratio(undefined, 1)).toBe('–');
    expect(ratio(1, 0)).toBe('–');
  });

  it('counts runs per minute of the time spent on them', () => {
    expect(perMinute([1000, 2000, 3000])).toBe(30);
    expect(perMinute([])).toBeUndefined();
    const t: ConcurrentTotals = { completed: 8, wallMs: 12_000, machineCpuMs: 20_000, groups: {} };
    expect(throughput(t)).toBe(40);
    expect(perRun(t.machineCpuMs, t)).toBe(2500);
    expect(throughput({ ...t, completed: 0 })).toBeUndefined();
  });
});

describe('CPU groups', () => {
  it('names the processes a run costs by what they are', () => {
    const g = (comm: string, cmd = '', pid = 10) => groupOf(comm, cmd, 1, pid);
    expect(g('node', 'node bench.js', 1)).toBe('bench client');
    expect(g('claude', '/opt/jetty/claude -p --input-format stream-json')).toBe('claude CLI');
    expect(g('node', 'node dist/src/main/server.js --role worker')).toBe('server: worker');
    expect(g('node', 'node dist/src/main/server.js --role api')).toBe('server: api');
    expect(g('node', 'node /x/claude-max-api-proxy/dist/server/standalone.js 4000')).toBe('proxy server');
    expect(g('node', '/opt/jetty/bin/node /opt/jetty/forwarder.js')).toBe('sandbox: gateway forwarder');
    expect(
      g('node', "/opt/jetty/bin/node\0-e\0'use strict'; // jetty-sandbox-supervisor\n…forwarder.js…"),
    ).toBe('sandbox: supervisor + forwarder');
    expect(g('exe', 'runc init')).toBe('runc');
    expect(g('containerd-shim', 'containerd-shim-runc-v2 -namespace moby')).toBe('containerd-shim');
    expect(g('kworker/1:1H-kblockd')).toBe('kernel threads');
    expect(g('node', 'node some-other-tool.js')).toBe('other node processes');
  });
});

describe('the report with runs in flight', () => {
  it('shows runs/min and CPU per run with their ratios, the small groups folded into the rest', () => {
    const totals = (
      completed: number,
      wallMs: number,
      machineCpuMs: number,
      groups: Record<string, number>,
    ) => ({
      completed,
      wallMs,
      machineCpuMs,
      groups,
    });
    const r: VsPeersResult = {
      date: new Date('2026-12-07T17:00:00Z'),
      machine: {
        cores: 2,
        cpuModel: 'test cpu',
        memoryGiB: 1,
        os: 'Linux',
        docker: 'engine 1',
        node: 'v20',
        load: [1, 1, 1],
      },
      loadAfter: [1, 1, 1],
      serverUrl: 'http://127.0.0.1:1',
      coldServer: false,
      cliVersion: '2.1.197',
      proxyVersion: '1.0.0',
      times: {
        server: { first: [10], done: [700] },
        bare: { first: [600], done: [1000] },
        proxy: { first: [700], done: [1000] },
      },
      serverAgent: [500],
      serverFirstAgent: [120],
      concurrent: {
        inFlight: 4,
        blocks: 2,
        peers: {
          server: totals(16, 24_000, 48_000, { 'claude CLI': 24_000, dockerd: 4_000, 'kernel threads': 16 }),
          bare: totals(16, 20_000, 32_000, { 'claude CLI': 28_000, 'kernel threads': 16 }),
          proxy: totals(16, 20_000, 33_600, { 'claude CLI': 28_000, 'proxy server': 800 }),
        },
      },
      failures: [],
    };
    const md = renderVsPeers(r);
    expect(md).toContain('| server: request → first agent event p50 | 120 | – | – |');
    expect(md).toContain('## 4 in flight');
    expect(md).toContain('| runs/min | 40.0 | 48.0 | 48.0 | 0.83× | 1.00× |');
    expect(md).toContain('| CPU ms per run, whole machine | 3000 | 2000 | 2100 | 1.50× | 1.05× |');
    expect(md).toContain('| … dockerd | 250 | 0 | 0 |');
    expect(md).toContain('| … proxy server | 0 | 0 | 50 |');
    // 1 ms per run: folded into the rest, with what no group holds.
    expect(md).not.toContain('kernel threads');
    expect(md).toContain('| … the rest (smaller groups, unattributed) | 1250 | 250 | 300 |');
  });
});
