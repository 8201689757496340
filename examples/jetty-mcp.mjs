// Jetty's MCP server (jetty-mcp-server), unchanged, over stdio, pointed at this server; driven here
// by the MCP SDK's client the way an agent's MCP host drives it.
// Usage: JETTY_API_URL=http://127.0.0.1:8080 JETTY_API_TOKEN=jrk_… node examples/jetty-mcp.mjs
import { createRequire } from 'node:module';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const pkg = createRequire(import.meta.url).resolve('jetty-mcp-server/package.json');
const transport = new StdioClientTransport({
  command: process.execPath,
  args: [path.join(path.dirname(pkg), 'dist/index.js')],
  env: { PATH: process.env.PATH, JETTY_API_URL: process.env.JETTY_API_URL, JETTY_API_TOKEN: process.env.JETTY_API_TOKEN },
});
const mcp = new Client({ name: 'example', version: '1.0.0' });
await mcp.connect(transport);
const call = async (name, args, show = (v) => JSON.stringify(v)) => {
  const res = await mcp.callTool({ name, arguments: args });
  if (res.isError) throw new Error(`${name}: ${res.content[0].text}`);
  const value = JSON.parse(res.content[0].text);
  console.log(`${name} →`, show(value));
  return value;
};
const [{ name: collection }] = await call('list-collections', {});
await call('check-secrets', { collection, required_keys: ['ANTHROPIC_API_KEY', 'REPORT_TOKEN'] });
const run = await call(
  'run-workflow',
  { collection, task: 'greeting', init_params: { vars: { name: 'Grace' } } },
  (v) => `${v.message}: ${v.workflow_id} (${v.trajectory.status})`,
);
const id = run.workflow_id.slice(run.workflow_id.lastIndexOf('--') + 2);
for (;;) {
  const res = await mcp.callTool({ name: 'get-trajectory', arguments: { collection, task: 'greeting', trajectory_id: id } });
  const t = JSON.parse(res.content[0].text);
  if (!['pending', 'running'].includes(t.status)) {
    console.log('get-trajectory →', t.status, t.steps.run.outputs.files.map((f) => f.path));
    break;
  }
  await new Promise((r) => setTimeout(r, 500));
}
await mcp.close();
