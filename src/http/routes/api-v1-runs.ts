/**
 * Jetty's /api/v1, part two: starting runs of a task (multipart `init_params`, `secret_params`,
 * `files`, webhook fields), trajectories, labels, statuses, files, uploads and logs. A run started
 * here is the same run a /v1/chat/completions call makes (same pre-flight, queue and worker); these
 * routes only speak Jetty's shapes.
 */
import type { MultipartFile, MultipartValue } from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError, badRequest, isAppError, jsonTooDeep, notFound, quoted } from '../../errors.js';
import { TERMINAL_STATUSES } from '../../events/types.js';
import { keySegments, resolveAssets } from '../../jetty/assets.js';
import { jettyTrajectory, parseFileKey, taskOf, workflowId } from '../../jetty/trajectory.js';
import type { SavedUpload } from '../../jetty/uploads.js';
import { asInitParamsError, chatRequestOf, mergeInitParams } from '../../jetty/workflow.js';
import { isPlainObject, jsonNestingDepth } from '../../json.js';
import type { RunView } from '../../queue/run-service.js';
import { envNameProblem } from '../../tenancy/names.js';
import { PROVIDER_KEY_VARIABLES } from '../../tenancy/provider-keys.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';
import { collectionContext, planRun } from '../preflight.js';
import { type DownloadSource, sendDownload } from '../ranged-download.js';
import { ownCollection } from './api-v1-collections.js';

const TAG = ['jetty'];
const ct = z.object({ c: z.string(), t: z.string() });
const cti = z.object({ c: z.string(), t: z.string(), id: z.string() });
/** run-sync answers before this, so that the SDK's 60 s header timeout never fires first. */
const RUN_SYNC_WAIT_MS = 50_000;
const MAX_LABEL_KEY = 200;
const MAX_LABEL_VALUE = 10_000;

type RunForm = {
  fields: Record<string, string>;
  upload: SavedUpload | null;
};

function jsonObjectField(raw: string | undefined, name: string, maxDepth: number): Record<string, unknown> {
  if (raw === undefined || raw.trim() === '') return {};
  if (jsonNestingDepth(raw, maxDepth) > maxDepth) throw jsonTooDeep(name, maxDepth, name);
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw badRequest(
      `${name} is not JSON (${(e as Error).message}). Send it as the JSON text of an object, e.g. ${name}={"vars":{"name":"x"}}; with curl use --form-string so ";" is kept.`,
      name,
      'invalid_json',
    );
  }
  if (!isPlainObject(v)) {
    throw badRequest(`${name} must be the JSON text of an object, e.g. {"vars": {}}.`, name);
  }
  return v;
}

/** The run's own secret values: names like environment variables, string values, no provider keys. */
function secretValues(raw: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    const param = `secret_params.${name.slice(0, 64)}`;
    const problem = envNameProblem(name);
    if (problem) throw badRequest(problem, param, 'invalid_variable_name');
    if (PROVIDER_KEY_VARIABLES.has(name)) {
      throw badRequest(
        `${name} is a provider key; provider keys never enter a sandbox. Set it in the collection's environment and the gateway uses it.`,
        param,
        'provider_key_as_secret',
      );
    }
    // Messages name the secret, never its value.
    if (typeof value !== 'string') throw badRequest(`${name} must be a string.`, param);
    out[name] = value;
  }
  return out;
}

/** Reads a multipart form: fields by name, files saved as one upload as they stream in. */
async function readRunForm(req: FastifyRequest, deps: AppDeps, collection: string): Promise<RunForm> {
  if (!req.isMultipart()) {
    throw new AppError(
      'Send the run as multipart/form-data: a field init_params (JSON text of an object), optional secret_params, webhook_url, webhook_secret, and files parts. JSON bodies are not accepted here.',
      { status: 415, type: 'invalid_request_error', code: 'multipart_required', param: null },
    );
  }
  const fields: Record<string, string> = {};
  async function* files() {
    for await (const part of req.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== 'files') {
          part.file.resume();
          throw badRequest(
            `Unexpected file part "${part.fieldname}": file parts are named "files".`,
            part.fieldname,
          );
        }
        yield { filename: part.filename, stream: (part as MultipartFile).file };
      } else {
        const f = part as MultipartValue<unknown>;
        if (f.fieldnameTruncated || f.valueTruncated) {
          throw new AppError(`The form field ${f.fieldname} is larger than this server accepts.`, {
            status: 413,
            type: 'invalid_request_error',
            code: 'field_too_large',
            param: f.fieldname,
          });
        }
        fields[f.fieldname] = String(f.value);
        // init_params first, as every client sends it: a bad one fails before any file is stored.
        if (f.fieldname === 'init_params')
          jsonObjectField(fields.init_params, 'init_params', deps.maxJsonDepth);
      }
    }
  }
  try {
    const upload = await deps.uploads.save(collection, files(), { allowEmpty: true });
    return { fields, upload };
  } catch (err) {
    throw multipartError(err, deps);
  }
}

/** The multipart parser's own failures, as the 4xx a client can act on. */
function multipartError(err: unknown, deps: AppDeps): unknown {
  if (isAppError(err)) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e.code === 'FST_FILES_LIMIT') {
    return new AppError(`At most ${deps.uploads.limits.maxFiles} files per request.`, {
      status: 413,
      type: 'invalid_request_error',
      code: 'too_many_files',
      param: 'files',
    });
  }
  if (typeof e.statusCode === 'number' && e.statusCode < 500) return err;
  // busboy: a cut or garbled body ("Unexpected end of form", "Malformed part header", ...).
  return badRequest(
    `The multipart body is malformed: ${e.message ?? 'unreadable'}.`,
    null,
    'invalid_multipart',
  );
}

async function trajectoryOf(deps: AppDeps, run: RunView) {
  const [input, labels] = await Promise.all([deps.runs.input(run.id), deps.runs.labels(run.id)]);
  return jettyTrajectory(run, input, labels);
}

/** The run, when it is this collection's and this task's; otherwise the same 404 as no run at all. */
async function runOf(deps: AppDeps, req: FastifyRequest, c: string, t: string, id: string): Promise<RunView> {
  const collection = ownCollection(req, c);
  const run = id.includes('--') ? null : await deps.runs.get(id, collection);
  if (!run || taskOf(run) !== t) {
    throw notFound(`No trajectory ${quoted(id)} in ${quoted(`${c}/${t}`)}.`, 'trajectory_not_found');
  }
  return run;
}

export function apiV1RunRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  const start = async (req: FastifyRequest, params: { c: string; t: string }) => {
    const collection = ownCollection(req, params.c);
    const task = await deps.tasks.get(collection, params.t);
    const form = await readRunForm(req, deps, collection);
    const submitted = jsonObjectField(form.fields.init_params, 'init_params', deps.maxJsonDepth);
    const secrets = secretValues(
      jsonObjectField(form.fields.secret_params, 'secret_params', deps.maxJsonDepth),
    );
    if (form.fields.subscription_credential) {
      throw badRequest(
        'subscription_credential is not served by this server: set the provider key in the collection’s environment instead.',
        'subscription_credential',
      );
    }
    const init = mergeInitParams(task.workflow, submitted);
    if (form.upload) {
      const given = Array.isArray(init.file_paths) ? init.file_paths : [];
      init.file_paths = [...given, ...form.upload.file_paths];
    }
    try {
      const chat = chatRequestOf(task.workflow, init, {
        collection,
        task: task.name,
        webhookUrl: form.fields.webhook_url,
        webhookSecret: form.fields.webhook_secret,
      });
      const ctx = await collectionContext(deps, collection);
      const assets = await resolveAssets((init.file_paths as unknown[] | undefined) ?? [], {
        collection,
        runs: deps.runs,
        uploads: deps.uploads,
        param: 'jetty.file_paths',
      });
      const plan = planRun(chat, deps, ctx, {
        secretParams: new Set(Object.keys(secrets)),
        assets,
        variablesField: 'init_params.vars',
      });
      const hasSecrets = Object.keys(secrets).length > 0;
      const { record } = await deps.runs.create(plan.job, {
        collection,
        task: task.name,
        // What was submitted, with what the run actually uses over it (defaults filled in).
        initParams: { ...init, ...plan.initParams },
        warnings: plan.warnings,
        ...(hasSecrets
          ? { sealSecrets: (runId: string) => deps.tenancy.sealRunSecrets(collection, runId, secrets) }
          : {}),
      });
      req.log.info({ runId: record.id, task: task.name }, 'workflow run queued');
      return record;
    } catch (err) {
      throw asInitParamsError(err);
    }
  };

  const response = async (run: RunView, message: string) => ({
    message,
    workflow_id: workflowId(run),
    result: {},
    trajectory: await trajectoryOf(deps, run),
    metadata: '',
  });

  r.post(
    '/api/v1/run/:c/:t',
    {
      schema: {
        summary:
          'Start a run of a task (multipart: init_params, secret_params, files, webhook_url, webhook_secret)',
        description:
          'Answers at once with `workflow_id` (`<collection>-<task>--<trajectory id>`); the trajectory is readable at GET /api/v1/db/trajectory/{c}/{t}/{id} from then on. Uploaded `files` land in the sandbox under /app/assets and in `init_params.file_paths`.',
        tags: TAG,
        params: ct,
      },
    },
    async (req) => response(await start(req, req.params), 'Workflow started'),
  );

  r.post(
    '/api/v1/run-sync/:c/:t',
    {
      schema: {
        summary: 'Start a run and answer when it ends (or after 50 s, still running)',
        tags: TAG,
        params: ct,
      },
    },
    async (req, reply) => {
      const rec = await start(req, req.params);
      const left = new AbortController();
      reply.raw.on('close', () => left.abort());
      const run = await deps.runs.waitForEnd(rec.id, rec.collection, RUN_SYNC_WAIT_MS, left.signal);
      const body = await response(
        run,
        TERMINAL_STATUSES.includes(run.status) ? `Workflow ${run.status}` : 'Workflow still running',
      );
      return { ...body, result: body.trajectory.steps.run.outputs };
    },
  );

  r.get(
    '/api/v1/db/trajectories/:c/:t',
    {
      schema: {
        summary: 'A task’s trajectories, newest first (page counts from 1)',
        tags: TAG,
        params: ct,
        querystring: z.object({
          limit: z.coerce.number().int().min(1).max(100).default(10),
          page: z.coerce.number().int().min(1).default(1),
        }),
      },
    },
    async (req) => {
      const collection = ownCollection(req, req.params.c);
      const { limit, page } = req.query;
      const { ids, total } = await deps.runs.store.pageIds(
        { collection, task: req.params.t },
        (page - 1) * limit,
        limit,
      );
      const runs = (await Promise.all(ids.map((id) => deps.runs.get(id, collection)))).filter(
        (x): x is RunView => x !== null,
      );
      return {
        trajectories: await Promise.all(runs.map((run) => trajectoryOf(deps, run))),
        total,
        page,
        limit,
        has_more: page * limit < total,
      };
    },
  );

  const getOne = async (req: FastifyRequest<{ Params: { c: string; t: string; id: string } }>) =>
    trajectoryOf(deps, await runOf(deps, req, req.params.c, req.params.t, req.params.id));
  r.get(
    '/api/v1/db/trajectory/:c/:t/:id',
    { schema: { summary: 'A trajectory', tags: TAG, params: cti } },
    getOne,
  );
  r.get(
    '/api/v1/trajectory/:c/:t/:id',
    { schema: { summary: 'A trajectory (storage view; the same document)', tags: TAG, params: cti } },
    getOne,
  );

  r.post(
    '/api/v1/trajectory/:c/:t/:id/labels',
    {
      schema: {
        summary: 'Add a label {key, value, author}; read back in the trajectory’s labels',
        tags: TAG,
        params: cti,
      },
    },
    async (req) => {
      const run = await runOf(deps, req, req.params.c, req.params.t, req.params.id);
      const body = (req.body ?? {}) as Record<string, unknown>;
      const str = (name: string, max: number, required: boolean) => {
        const v = body[name];
        if (v === undefined && !required) return undefined;
        if (typeof v !== 'string' || (required && v === '')) {
          throw badRequest(`${name} must be a non-empty string.`, name);
        }
        if (v.length > max) throw badRequest(`${name} has ${v.length} characters; at most ${max}.`, name);
        return v;
      };
      const label = {
        key: str('key', MAX_LABEL_KEY, true)!,
        value: str('value', MAX_LABEL_VALUE, true)!,
        author: str('author', MAX_LABEL_KEY, false) ?? run.collection,
        created: new Date().toISOString(),
      };
      await deps.runs.addLabel(run.id, label);
      return label;
    },
  );

  r.post(
    '/api/v1/trajectory/:c/:t/statuses',
    {
      schema: {
        summary: 'Change statuses in a batch: {"<trajectory id>": "cancelled", ...}',
        tags: TAG,
        params: ct,
      },
    },
    async (req) => {
      const collection = ownCollection(req, req.params.c);
      const body = req.body;
      if (!isPlainObject(body) || Object.keys(body).length === 0) {
        throw badRequest('Send {"<trajectory id>": "cancelled", ...}.', null);
      }
      const results = [];
      for (const [id, wanted] of Object.entries(body as Record<string, unknown>).slice(0, 100)) {
        const run = id.includes('--') ? null : await deps.runs.get(id, collection);
        const base = {
          trajectory_id: id,
          new_status: wanted,
          updated: false,
          storage_path: null as string | null,
        };
        if (!run || taskOf(run) !== req.params.t) {
          results.push({ ...base, error: 'not found' });
        } else if (wanted !== 'cancelled') {
          results.push({
            ...base,
            error: 'only "cancelled" can be set: the server sets the others as runs end',
          });
        } else {
          const after = await deps.runs.cancel(run.id, collection);
          const traj = await trajectoryOf(deps, after);
          results.push({
            ...base,
            new_status: after.status === 'running' ? 'cancelled' : after.status,
            updated: after.cancel_requested,
            storage_path: traj.storage_path,
            error: after.cancel_requested ? null : `the run already ended (${after.status})`,
          });
        }
      }
      return { results, updated_count: results.filter((x) => x.updated).length };
    },
  );

  r.get(
    '/api/v1/db/stats/:c/:t',
    { schema: { summary: 'Counts of a task’s runs by status', tags: TAG, params: ct } },
    async (req) => {
      const collection = ownCollection(req, req.params.c);
      const { ids, total } = await deps.runs.store.pageIds({ collection, task: req.params.t }, 0, 1000);
      const by: Record<string, number> = { pending: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
      for (const id of ids) {
        const run = await deps.runs.get(id, collection);
        if (run) by[run.status] = (by[run.status] ?? 0) + 1;
      }
      return { total, counted: ids.length, by_status: by };
    },
  );

  r.get(
    '/api/v1/file/*',
    { schema: { summary: 'Download a file by storage key (an output, or an upload)', tags: TAG } },
    async (req, reply) => {
      const raw = (req.raw.url ?? '').split('?')[0]!.replace(/^\/+api\/v1\/file\//, '');
      const segments = raw.split('/').map((s) => {
        try {
          return decodeURIComponent(s);
        } catch {
          return '';
        }
      });
      const key = segments.join('/');
      const none = () => notFound(`No file ${quoted(key, 200)}.`, 'file_not_found');
      const names = keySegments(key);
      const parts = names ? parseFileKey(names) : null;
      if (!parts) throw none();
      try {
        ownCollection(req, parts.collection);
      } catch {
        throw none();
      }
      // Streamed from the blob store; a Range request gets its bytes (206).
      let source: DownloadSource | null = null;
      let type = 'application/octet-stream';
      if (parts.kind === 'upload') {
        const size = await deps.uploads.size(parts.collection, parts.id, parts.relPath);
        if (size !== null)
          source = {
            size,
            open: (range) => deps.uploads.open(parts.collection, parts.id, parts.relPath, range),
          };
      } else {
        const run = await deps.runs.get(parts.id, parts.collection);
        const art =
          run && taskOf(run) === parts.task ? run.artifacts.find((a) => a.path === parts.relPath) : null;
        if (art) {
          source = {
            size: art.size,
            etag: art.sha256,
            open: (range) => deps.blobs.openArtifact(parts.id, art.path, range),
          };
          type = art.content_type;
        }
      }
      if (!source) throw none();
      const name = parts.relPath.split('/').pop() ?? 'file';
      const ascii = name.replace(/[^\x20-\x7e]|["';\\]/g, '_');
      reply
        .header('content-type', type)
        .header(
          'content-disposition',
          `attachment; filename="${ascii}"; filename*=UTF-8''${encodeRfc5987(name)}`,
        );
      const sent = await sendDownload(req, reply, source);
      if (!sent) throw none();
      return sent;
    },
  );

  r.post(
    '/api/v1/sandbox/upload',
    {
      schema: {
        summary: 'Upload files (multipart, repeated "files" parts; zips are unpacked) for runs’ file_paths',
        tags: TAG,
      },
    },
    async (req, reply) => {
      const collection = collectionOf(req);
      const form = await readRunForm(req, deps, collection);
      if (!form.upload)
        throw badRequest('No files: send one or more multipart parts named "files".', 'files', 'no_files');
      return reply.code(201).send(form.upload);
    },
  );

  r.get(
    '/api/v1/workflows-logs/:wid',
    {
      schema: {
        summary: 'A run’s log: its events, each with a level',
        tags: TAG,
        params: z.object({ wid: z.string() }),
      },
    },
    async (req) => {
      const wid = req.params.wid;
      const id = wid.includes('--') ? wid.slice(wid.lastIndexOf('--') + 2) : wid;
      const run = await deps.runs.get(id, collectionOf(req));
      if (!run || workflowId(run) !== wid)
        throw notFound(`No workflow ${quoted(wid)}.`, 'workflow_not_found');
      const trajectory = await deps.runs.trajectory(run.id, run.collection);
      const events = trajectory.events.map((ev) => ({
        timestamp: new Date(ev.ts).toISOString(),
        level:
          ev.type === 'run.failed'
            ? 'error'
            : ev.type === 'run.warning' || ev.type === 'log'
              ? 'warning'
              : 'info',
        type: ev.type,
        message: summary(ev.type, ev.data),
        data: ev.data,
      }));
      return { workflow_id: wid, trajectory_id: run.id, status: run.status, events };
    },
  );
}

/** RFC 5987 value: what encodeURIComponent leaves, minus the characters it must not (' ( ) *). */
function encodeRfc5987(s: string): string {
  return encodeURIComponent(s).replace(/['()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
}

function summary(type: string, data: unknown): string {
  const d = (data ?? {}) as Record<string, unknown>;
  const text = d.text ?? d.line ?? d.message ?? (d.error as { message?: string } | undefined)?.message;
  if (typeof text === 'string') return text.slice(0, 2000);
  if (type === 'tool.call') return `${String(d.name ?? 'tool')} called`;
  if (type === 'artifact') return `wrote ${String(d.path ?? '')}`;
  return type;
}
