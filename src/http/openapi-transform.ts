import { jsonSchemaTransform } from 'fastify-type-provider-zod';

type TransformArg = Parameters<typeof jsonSchemaTransform>[0];
type JsonObject = Record<string, unknown>;

/** Routes whose 200 is a stream of server-sent events, and how their stream reads. */
const EVENT_STREAMS: Record<string, { description: string; alsoJson: boolean }> = {
  'GET /v1/runs/:id/events': {
    description:
      "A text/event-stream of the run's normalized events: `event:` the type (run.started, agent.message, tool.call, …), `id:` its stream id (send it back as Last-Event-ID to resume), `data:` the event as JSON. `:` comment lines keep an idle connection alive. Ends after run.completed, run.failed or run.cancelled.",
    alsoJson: false,
  },
  'POST /v1/chat/completions': {
    description:
      'With `"stream": true`: a text/event-stream of `chat.completion.chunk` objects in `data:` lines, then `data: [DONE]`. The agent\'s words are delta.content, one line per tool call is delta.reasoning_content, and the last chunk carries usage and jetty_metadata.',
    alsoJson: true,
  },
};

/** Routes whose 200 is plain text. */
const TEXT_RESPONSES: Record<string, { type: string; description: string }> = {
  'GET /metrics': {
    type: 'text/plain; version=0.0.4',
    description: 'The Prometheus text exposition format (docs/operations.md lists the metrics).',
  },
};

const WILDCARD_PARAM = {
  type: 'string',
  description: 'The rest of the path, slashes included (e.g. reports/summary.md).',
};

/**
 * The OpenAPI document as Swagger UI should show it, on top of the zod schemas' own transform:
 * routes open to anyone carry no padlock (`security: []`), routes the admin token also opens say
 * so, a wildcard path segment is named `{path}` instead of `{*}`, and streaming routes are
 * documented as text/event-stream.
 */
export function openApiTransform(arg: TransformArg): { schema: JsonObject; url: string } {
  const out = jsonSchemaTransform(arg) as { schema: JsonObject; url: string };
  const schema: JsonObject = { ...out.schema };
  let url = out.url;
  const auth = (arg.route.config as { auth?: string } | undefined)?.auth;
  if (auth === 'public') schema.security = [];
  else if (auth === 'admin-or-collection') schema.security = [{ collectionKey: [] }, { adminToken: [] }];

  if (url.endsWith('/*')) {
    url = `${url.slice(0, -1)}:path`;
    const params = (schema.params as JsonObject | undefined) ?? { type: 'object', properties: {} };
    const { '*': _star, ...rest } = (params.properties as JsonObject | undefined) ?? {};
    const required = ((params.required as string[] | undefined) ?? []).filter((n) => n !== '*');
    schema.params = {
      ...params,
      properties: { ...rest, path: WILDCARD_PARAM },
      required: [...required, 'path'],
    };
  }

  const methods = Array.isArray(arg.route.method) ? arg.route.method : [arg.route.method];
  const stream = methods.map((m) => EVENT_STREAMS[`${m} ${arg.url}`]).find(Boolean);
  if (stream) schema.response = withEventStream((schema.response as JsonObject | undefined) ?? {}, stream);
  const text = methods.map((m) => TEXT_RESPONSES[`${m} ${arg.url}`]).find(Boolean);
  if (text) {
    schema.response = {
      ...((schema.response as JsonObject | undefined) ?? {}),
      200: { description: text.description, content: { [text.type]: { schema: { type: 'string' } } } },
    };
  }
  return { schema, url };
}

function withEventStream(
  response: JsonObject,
  stream: { description: string; alsoJson: boolean },
): JsonObject {
  const json = response['200'] as JsonObject | undefined;
  const sse = { schema: { type: 'string', description: stream.description } };
  return {
    ...response,
    200: {
      description: stream.alsoJson
        ? 'A chat.completion, or with stream: true an event stream'
        : 'An event stream',
      content: {
        ...(stream.alsoJson && json ? { 'application/json': { schema: json } } : {}),
        'text/event-stream': sse,
      },
    },
  };
}

/** The security schemes the transform refers to. */
export const ADMIN_TOKEN_SCHEME = {
  type: 'http' as const,
  scheme: 'bearer',
  description: "The operator's JETTY_ADMIN_TOKEN: creates and lists collections (on the routes that say so).",
};
