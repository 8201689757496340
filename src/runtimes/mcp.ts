import { z } from 'zod';

/**
 * MCP servers a run asks for (`jetty.mcp_servers`), in one neutral form; each runtime adapter
 * writes them in its own CLI's config form. Accepted as a map (name → server, the form Claude's
 * and Gemini's configs use) or a list of servers with a `name`.
 */
export const mcpServerSchema = z.discriminatedUnion('transport', [
  z.object({
    name: z.string(),
    transport: z.literal('stdio'),
    command: z.string(),
    args: z.array(z.string()),
    env: z.record(z.string(), z.string()),
  }),
  z.object({
    name: z.string(),
    transport: z.enum(['http', 'sse']),
    url: z.string(),
    headers: z.record(z.string(), z.string()),
  }),
]);

/** The normalized form, as jobs carry it and adapters read it. */
export type McpServer = z.infer<typeof mcpServerSchema>;

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const strings = z.record(z.string(), z.string({ error: 'must be a string' }));

const FORMS =
  'each server must be {command, args?, env?} for a local (stdio) server or {url, type?: "http"|"sse", headers?} for a remote one';

const serverSchema = z.union(
  [
    z.object({
      type: z.literal('stdio').optional(),
      command: z.string().min(1, 'must name the program to start'),
      args: z.array(z.string()).default([]),
      env: strings.default({}),
    }),
    z.object({
      type: z.enum(['http', 'sse']).default('http'),
      url: z.url({ error: 'must be an http(s) URL' }),
      headers: strings.default({}),
    }),
  ],
  { error: FORMS },
);

export const mcpServersSchema = z
  .union(
    [
      z.record(z.string().regex(NAME, 'server names are 1-64 letters, digits, _ or -'), serverSchema),
      z.array(
        serverSchema.and(
          z.object({ name: z.string().regex(NAME, 'server names are 1-64 letters, digits, _ or -') }),
        ),
      ),
    ],
    { error: `must map server names to servers: ${FORMS}` },
  )
  .transform((v): McpServer[] => {
    const entries = Array.isArray(v) ? v.map((s) => [s.name, s] as const) : Object.entries(v);
    return entries.map(([name, s]) =>
      'command' in s
        ? { name, transport: 'stdio' as const, command: s.command, args: s.args, env: s.env }
        : { name, transport: s.type, url: s.url, headers: s.headers },
    );
  })
  .describe(
    'MCP servers for the agent: {name: {command, args, env}} (runs inside the sandbox) or {name: {url, type, headers}}',
  );
