/**
 * A collection's tasks, listed by GET /v1/models as models (`task/<name>`), so that a chat client
 * that can only pick a model runs runbooks. Each names the runtime and model it runs on, as the
 * task's init_params, then its runbook's frontmatter, then the server's defaults decide them.
 */
import type { AgentName } from '../events/types.js';
import type { TaskRecord } from '../jetty/tasks.js';
import { isPlainObject } from '../json.js';
import { parseRunbook } from '../runbook/parse.js';
import { inferAgentFromModel, isModelPlaceholder } from '../runbook/resolve.js';
import { getRuntime } from '../runtimes/registry.js';
import type { ProviderName } from '../runtimes/types.js';
import { TASK_MODEL_PREFIX } from './conversation-plan.js';

export interface TaskModel {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  runtimes: string[];
  available: boolean;
  task: { name: string; description: string; runtime: string; model: string };
}

export function taskModel(
  task: TaskRecord,
  defaults: { agent: AgentName },
  providers: ReadonlySet<ProviderName>,
): TaskModel {
  const init = isPlainObject(task.workflow.init_params) ? task.workflow.init_params : {};
  const runbook = typeof init.instruction === 'string' ? init.instruction : '';
  let fm: ReturnType<typeof parseRunbook>['frontmatter'] | Record<string, never> = {};
  try {
    fm = parseRunbook(runbook).frontmatter;
  } catch {
    // A runbook whose frontmatter does not parse still lists; running it says what is wrong.
  }
  const str = (v: unknown) => (typeof v === 'string' && !isModelPlaceholder(v) ? v : undefined);
  const named = str(init.model) ?? str(fm.model);
  const agent = (str(init.agent) ??
    fm.agent ??
    (named ? inferAgentFromModel(named) : defaults.agent)) as AgentName;
  const runtime = getRuntime(agent);
  const provider = (str(init.model_provider) ?? fm.model_provider) as ProviderName | undefined;
  return {
    id: `${TASK_MODEL_PREFIX}${task.name}`,
    object: 'model',
    created: Math.floor(Date.parse(task.created) / 1000) || 0,
    owned_by: task.collection,
    runtimes: [agent],
    available:
      runtime !== undefined &&
      (provider ? providers.has(provider) : runtime.providers.some((p) => providers.has(p))),
    task: {
      name: task.name,
      description: task.description,
      runtime: agent,
      model: named ?? runtime?.defaultModel ?? '',
    },
  };
}
