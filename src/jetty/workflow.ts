/**
 * Jetty workflows, as this server runs them: one step whose activity is `runbook`. The shape is
 * Jetty's runbook task (`steps: ["run"]`, `step_configs.run.activity: "runbook"`, and
 * `init_params` holding the runbook as `instruction`, with `agent`, `model`, `model_provider`,
 * `vars`, `file_paths`). A run merges the submitted init_params over the task's and becomes the
 * same request a `/v1/chat/completions` call with a `jetty` block would be: one pre-flight, one
 * queue, one worker path for both surfaces.
 */
import { AppError, badRequest, quoted } from '../errors.js';
import { type ChatRequest, chatRequestSchema } from '../http/schemas.js';
import { isPlainObject } from '../json.js';

export type Workflow = Record<string, unknown>;

/** The one activity this server runs. */
export const RUNBOOK_ACTIVITY = 'runbook';

/** The workflow's single step: its name (the key its outputs appear under) and config. */
export function stepOf(workflow: Workflow): { name: string; config: Record<string, unknown> } {
  const steps = Array.isArray(workflow.steps) ? (workflow.steps as string[]) : ['run'];
  const name = steps[0] ?? 'run';
  const configs = isPlainObject(workflow.step_configs) ? workflow.step_configs : {};
  const config = isPlainObject(configs[name]) ? configs[name] : { activity: RUNBOOK_ACTIVITY };
  return { name, config };
}

/** Checks that a workflow is one this server can run; a 400 names the field and what is supported. */
export function checkWorkflow(w: unknown, param: string): Workflow {
  if (!isPlainObject(w)) {
    throw badRequest(
      `${param} must be an object: {"steps": ["run"], "step_configs": {"run": {"activity": "runbook"}}, "init_params": {"instruction": "<the runbook markdown>"}}.`,
      param,
    );
  }
  const steps = w.steps ?? ['run'];
  if (!Array.isArray(steps) || steps.length === 0 || !steps.every((s) => typeof s === 'string' && s !== '')) {
    throw badRequest(`${param}.steps must be a list of step names, e.g. ["run"].`, `${param}.steps`);
  }
  if (steps.length > 1) {
    throw badRequest(
      `${param}.steps has ${steps.length} steps; this server runs workflows of one step whose activity is "runbook". Put the whole job in one runbook.`,
      `${param}.steps`,
      'unsupported_workflow',
    );
  }
  const configs = w.step_configs;
  if (configs !== undefined && !isPlainObject(configs)) {
    throw badRequest(`${param}.step_configs must be an object keyed by step name.`, `${param}.step_configs`);
  }
  for (const [name, cfg] of Object.entries(configs ?? {})) {
    const at = `${param}.step_configs.${name}`;
    if (!isPlainObject(cfg)) throw badRequest(`${at} must be an object such as {"activity": "runbook"}.`, at);
    if (cfg.activity !== RUNBOOK_ACTIVITY) {
      throw badRequest(
        `${at}.activity is ${quoted(cfg.activity ?? null)}; this server runs only "${RUNBOOK_ACTIVITY}" steps (a coding agent on a runbook). Set "activity": "runbook".`,
        `${at}.activity`,
        'unsupported_activity',
      );
    }
  }
  if (w.init_params !== undefined && !isPlainObject(w.init_params)) {
    throw badRequest(`${param}.init_params must be an object.`, `${param}.init_params`);
  }
  return w;
}

/**
 * The task's init_params with the submitted ones over them (`vars` merged by name). `secret_params`
 * never come here: they go to the job sealed, not into anything stored in the clear.
 */
export function mergeInitParams(
  workflow: Workflow,
  submitted: Record<string, unknown>,
): Record<string, unknown> {
  const base = isPlainObject(workflow.init_params) ? workflow.init_params : {};
  const merged: Record<string, unknown> = { ...base, ...submitted };
  if (isPlainObject(base.vars) && isPlainObject(submitted.vars))
    merged.vars = { ...base.vars, ...submitted.vars };
  return merged;
}

/** Where an /api/v1 caller put what the chat pre-flight calls `jetty.x`, `messages[0]` or `model`. */
function renameParam(param: string | null): string | null {
  if (param === null) return null;
  return param
    .replace(/^jetty\.template_variables/, 'init_params.vars')
    .replace(/^jetty\./, 'init_params.')
    .replace(/^messages\[0\]\.content/, 'init_params.instruction')
    .replace(/^model$/, 'init_params.model');
}

/** An error of the chat pre-flight, reworded for a caller of /api/v1 (same status and code). */
export function asInitParamsError(err: unknown): unknown {
  if (!(err instanceof AppError)) return err;
  const message = err.message
    .replaceAll('jetty.template_variables', 'init_params.vars')
    .replaceAll('`jetty.', '`init_params.')
    .replaceAll('messages[0].content', 'init_params.instruction');
  return new AppError(message, {
    status: err.status,
    type: err.type,
    code: err.code,
    param: renameParam(err.param),
    details: err.details,
    headers: err.headers,
  });
}

/** The chat request a workflow run amounts to. Form fields come on top of the init_params. */
export function chatRequestOf(
  workflow: Workflow,
  init: Record<string, unknown>,
  extra: {
    collection: string;
    task: string;
    webhookUrl?: string | undefined;
    webhookSecret?: string | undefined;
  },
): ChatRequest {
  const { config } = stepOf(workflow);
  const instruction = init.instruction ?? init.runbook;
  if (typeof instruction !== 'string' || instruction.trim() === '') {
    throw badRequest(
      "init_params.instruction must hold the runbook (markdown with optional YAML frontmatter), in the task's workflow or in the run's init_params.",
      'init_params.instruction',
    );
  }
  const jetty: Record<string, unknown> = {
    runbook: true,
    collection: extra.collection,
    task: extra.task,
    agent: init.agent,
    model_provider: init.model_provider,
    snapshot: init.snapshot,
    template_variables: init.vars,
    file_paths: init.file_paths,
    timeout_sec: init.timeout_sec ?? config.timeout_sec,
    mcp_servers: init.mcp_servers,
    max_cost_usd: init.max_cost_usd,
    max_tokens: init.max_tokens,
    cpus: config.cpus,
    // Jetty's templates ask for network by default: true takes the collection's egress policy (the
    // run's events record every connection), false narrows the run to none.
    network_enabled: typeof config.network_enabled === 'boolean' ? config.network_enabled : undefined,
    webhook_url: extra.webhookUrl,
    webhook_secret: extra.webhookSecret,
  };
  const raw = {
    model: init.model,
    stream: false,
    messages: [
      { role: 'system', content: instruction },
      { role: 'user', content: typeof init.prompt === 'string' ? init.prompt : 'Execute the runbook.' },
    ],
    jetty: Object.fromEntries(Object.entries(jetty).filter(([, v]) => v !== undefined)),
  };
  const parsed = chatRequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.map(String);
    const param =
      path[0] === 'jetty'
        ? renameParam(`jetty.${path.slice(1).join('.')}`)
        : path[0] === 'model'
          ? 'init_params.model'
          : 'init_params';
    throw badRequest(`${param}: ${issue.message}`, param);
  }
  return parsed.data;
}
