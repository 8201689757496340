/**
 * Jetty's /api/v1, part one: health, collections, their environment, tasks, step templates, and
 * a clear answer for what this server does not serve (routines, trial keys). Every success is JSON
 * (`application/json`, lowercase: the SDK parses nothing else), never an empty body.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError, badRequest, notFound, quoted } from '../../errors.js';
import { RUNBOOK_ACTIVITY } from '../../jetty/workflow.js';
import { isPlainObject } from '../../json.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';

const TAG = ['jetty'];
const c = z.object({ c: z.string() });
const ct = z.object({ c: z.string(), t: z.string() });

/** The caller's collection when `name` is it; otherwise exactly what an unknown collection gets. */
export function ownCollection(req: FastifyRequest, name: string): string {
  const mine = collectionOf(req);
  if (name !== mine) throw notFound(`No collection named ${quoted(name)}.`, 'collection_not_found');
  return mine;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (!isPlainObject(body)) throw badRequest('The body must be a JSON object.', null);
  return body;
}

const STEP_TEMPLATES = [
  {
    name: RUNBOOK_ACTIVITY,
    activity_name: RUNBOOK_ACTIVITY,
    description:
      'Runs a coding agent (claude-code, codex, gemini-cli, opencode, hermes) on a runbook in a fresh sandbox and collects the files it writes.',
    init_params: ['instruction', 'agent', 'model', 'model_provider', 'vars', 'file_paths', 'timeout_sec'],
  },
];

export function apiV1CollectionRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/api/v1/health',
    { config: { auth: 'public' }, schema: { summary: 'Liveness (no key needed)', tags: TAG } },
    async () => ({ status: 'ok' }),
  );

  // ── Collections ───────────────────────────────────────────────────────────────────────
  r.get(
    '/api/v1/collections/',
    {
      config: { auth: 'admin-or-collection' },
      schema: { summary: 'Collections you can see: your key’s own (the admin token: all)', tags: TAG },
    },
    async (req) => {
      if (req.principal?.kind === 'admin') return deps.tenancy.listCollections();
      return [await deps.tenancy.getCollection(collectionOf(req))];
    },
  );

  r.post(
    '/api/v1/collections/',
    {
      config: { auth: 'admin-or-collection' },
      schema: { summary: 'Create a collection and its first API key (admin token only)', tags: TAG },
    },
    async (req, reply) => {
      if (req.principal?.kind !== 'admin') {
        throw new AppError(
          'Creating a collection needs the admin token (JETTY_ADMIN_TOKEN), not a collection key; or run `npm run jetty -- collections create <name>` on the server.',
          { status: 403, type: 'permission_error', code: 'admin_only' },
        );
      }
      const body = objectBody(req.body);
      const collection = await deps.tenancy.createCollection({
        name: body.name,
        description: body.description,
      });
      const key = await deps.tenancy.createApiKey(collection.name, { name: 'first' });
      return reply.code(201).send({ ...collection, api_key: key });
    },
  );

  r.get(
    '/api/v1/collections/:c',
    { schema: { summary: 'A collection, with its variable names', tags: TAG, params: c } },
    async (req) => {
      const name = ownCollection(req, req.params.c);
      const [rec, env] = await Promise.all([
        deps.tenancy.getCollection(name),
        deps.tenancy.checkSecrets(name, []),
      ]);
      return { ...rec, environment_variable_keys: env.configured };
    },
  );

  r.get(
    '/api/v1/collections/:c/environment',
    {
      schema: {
        summary: 'The collection’s environment variables: names, values hidden',
        tags: TAG,
        params: c,
      },
    },
    async (req) => deps.tenancy.getEnvironment(ownCollection(req, req.params.c), { reveal: false }),
  );

  r.patch(
    '/api/v1/collections/:c/environment',
    {
      schema: {
        summary: 'Set variables (merge: a string sets, null deletes, others are kept)',
        tags: TAG,
        params: c,
      },
    },
    async (req) => {
      const name = ownCollection(req, req.params.c);
      const body = objectBody(req.body);
      if (!('environment_variables' in body)) {
        throw badRequest(
          'Send {"environment_variables": {"NAME": "value", "OLD": null}}: a string sets a variable, null deletes it.',
          'environment_variables',
        );
      }
      return deps.tenancy.patchEnvironment(name, body.environment_variables);
    },
  );

  r.post(
    '/api/v1/collections/:c/check-secrets',
    {
      schema: {
        summary: 'Which of these variables the collection has: {configured, missing, ready}',
        description:
          'Body {"required_keys": ["NAME", ...]}. The answer of jetty-mcp-server’s check-secrets, from the same names a run’s pre-flight checks its declared secrets against.',
        tags: TAG,
        params: c,
      },
    },
    async (req) => {
      const name = ownCollection(req, req.params.c);
      const keys = objectBody(req.body).required_keys;
      if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string') || keys.length > 500) {
        throw badRequest('required_keys must be a list of variable names (at most 500).', 'required_keys');
      }
      return deps.tenancy.checkSecrets(name, keys as string[]);
    },
  );

  // ── Tasks ─────────────────────────────────────────────────────────────────────────────
  const listTasks = async (req: FastifyRequest<{ Params: { c: string } }>) =>
    deps.tasks.list(ownCollection(req, req.params.c));
  r.get(
    '/api/v1/tasks/:c/',
    { schema: { summary: 'The collection’s tasks', tags: TAG, params: c } },
    listTasks,
  );

  r.post(
    '/api/v1/tasks/:c',
    {
      schema: {
        summary: 'Create a task: a named runbook workflow',
        description:
          'Body: {"name", "description", "workflow": {"steps": ["run"], "step_configs": {"run": {"activity": "runbook"}}, "init_params": {"instruction": "<runbook markdown>", "agent", "model", "model_provider", "vars"}}}.',
        tags: TAG,
        params: c,
      },
    },
    async (req, reply) => {
      const name = ownCollection(req, req.params.c);
      return reply.code(201).send(await deps.tasks.create(name, objectBody(req.body)));
    },
  );

  r.get('/api/v1/tasks/:c/:t', { schema: { summary: 'A task', tags: TAG, params: ct } }, async (req) =>
    deps.tasks.get(ownCollection(req, req.params.c), req.params.t),
  );

  r.put(
    '/api/v1/tasks/:c/:t',
    { schema: { summary: 'Update a task (workflow and/or description)', tags: TAG, params: ct } },
    async (req) =>
      deps.tasks.update(ownCollection(req, req.params.c), req.params.t, objectBody(req.body ?? {})),
  );

  r.delete(
    '/api/v1/tasks/:c/:t',
    { schema: { summary: 'Delete a task (its runs stay)', tags: TAG, params: ct } },
    async (req) => {
      await deps.tasks.delete(ownCollection(req, req.params.c), req.params.t);
      return { deleted: true, name: req.params.t };
    },
  );

  // ── Step templates, and what is not served ───────────────────────────────────────────
  r.get(
    '/api/v1/step-templates',
    { schema: { summary: 'Step templates: runbook', tags: TAG } },
    async () => STEP_TEMPLATES,
  );
  r.get(
    '/api/v1/step-templates/:name',
    { schema: { summary: 'One step template', tags: TAG, params: z.object({ name: z.string() }) } },
    async (req) => {
      const found = STEP_TEMPLATES.find((t) => t.name === req.params.name);
      if (!found) {
        throw notFound(
          `No step template ${quoted(req.params.name)}: this server runs "${RUNBOOK_ACTIVITY}" steps only.`,
          'step_template_not_found',
        );
      }
      return found;
    },
  );

  const unserved = (what: string) => async () => {
    throw notFound(
      `${what} are not served by this server. Runs are started with POST /api/v1/run/{collection}/{task} or /v1/chat/completions.`,
      'not_served',
    );
  };
  for (const path of ['/api/v1/routines/*', '/api/v1/routines/:c']) {
    r.all(path, { schema: { hide: true } }, unserved('Routines (scheduled runs)'));
  }
  r.all('/api/v1/trial/*', { schema: { hide: true } }, unserved('Trial keys'));
}
