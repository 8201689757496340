import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';

// jetty.mcp_servers reaches the runtime in its own config form: a stdio MCP server that runs inside
// the sandbox (a few lines of node, given as the server's command) comes up for claude-code, and a
// runtime without MCP, or a remote server without network, is refused before the run is queued.
const MCP_SERVER = [
  "const rl = require('readline').createInterface({ input: process.stdin });",
  'const send = (m) => process.stdout.write(JSON.stringify(m) + "\\n");',
  "rl.on('line', (l) => { const m = JSON.parse(l); if (m.id === undefined) return;",
  "  if (m.method === 'initialize') send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'echo', version: '1.0.0' } } });",
  "  else if (m.method === 'tools/list') send({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'echo', description: 'Echoes', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } }] } });",
  "  else send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no such method' } }); });",
].join('\n');

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

describe('jetty.mcp_servers', () => {
  it('starts a stdio MCP server for claude-code inside the sandbox', async () => {
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest('# MCP\n```simulate\n- say: checked the tools\n```\n', {
        stream: false,
        jetty: { mcp_servers: { echo: { command: 'node', args: ['-e', MCP_SERVER] } } },
      }),
    );
    const body = (await res.json()) as { jetty_metadata: { trajectory_id: string } };
    expect(res.status).toBe(200);
    const traj = (await (
      await h.fetch(`${h.url}/v1/runs/${body.jetty_metadata.trajectory_id}/trajectory`)
    ).json()) as {
      events: Array<{ type: string; data: { line?: string } }>;
    };
    const lines = traj.events.filter((e) => e.type === 'log').map((e) => e.data.line);
    expect(lines).toContain('claude-code: MCP servers: echo (connected)');
  });

  it('refuses a remote MCP server when the sandbox has no network', async () => {
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest('# MCP\n', {
        stream: false,
        jetty: { mcp_servers: { docs: { url: 'https://mcp.example.com/mcp' } } },
      }),
    );
    expect(res.status).toBe(400);
    const err = ((await res.json()) as { error: { param: string; code: string } }).error;
    expect(err).toMatchObject({ param: 'jetty.mcp_servers', code: 'mcp_needs_network' });
  });

  it('refuses a malformed server with the accepted forms', async () => {
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest('# MCP\n', { stream: false, jetty: { mcp_servers: { bad: { cmd: 'x' } } } }),
    );
    expect(res.status).toBe(400);
    const err = ((await res.json()) as { error: { param: string; message: string } }).error;
    expect(err.param).toMatch(/^jetty\.mcp_servers/);
    expect(err.message).toMatch(/command/);
  });
});
