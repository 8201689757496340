/**
 * Tasks: a collection's named runbook workflows (Jetty's `/api/v1/tasks`). One Redis hash per
 * collection, name → JSON record; the workflow is checked when it is stored, so a task that exists
 * can run.
 */
import type { Redis } from 'ioredis';
import { AppError, badRequest, notFound, quoted } from '../errors.js';
import { taskNameProblem } from '../tenancy/names.js';
import { checkWorkflow, type Workflow } from './workflow.js';

export interface TaskRecord {
  name: string;
  description: string;
  workflow: Workflow;
  collection: string;
  created: string;
  updated: string;
}

const MAX_DESCRIPTION = 2000;
const MAX_TASKS = 1000;

function description(v: unknown, param: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw badRequest(`${param} must be a string.`, param);
  if (v.length > MAX_DESCRIPTION) {
    throw badRequest(`${param} has ${v.length} characters; it may have at most ${MAX_DESCRIPTION}.`, param);
  }
  return v;
}

export class TaskStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(collection: string): string {
    return `${this.prefix}:collection:${collection}:tasks`;
  }

  private noTask(name: string): AppError {
    return notFound(`No task named ${quoted(name)} in this collection.`, 'task_not_found');
  }

  async create(collection: string, body: Record<string, unknown>): Promise<TaskRecord> {
    const problem = taskNameProblem(body.name);
    if (problem) throw badRequest(problem, 'name', 'invalid_task_name');
    const name = body.name as string;
    const workflow = checkWorkflow(body.workflow, 'workflow');
    const now = new Date().toISOString();
    const rec: TaskRecord = {
      name,
      description: description(body.description, 'description'),
      workflow,
      collection,
      created: now,
      updated: now,
    };
    if ((await this.redis.hlen(this.key(collection))) >= MAX_TASKS) {
      throw badRequest(`A collection may hold at most ${MAX_TASKS} tasks; delete some first.`, 'name');
    }
    if ((await this.redis.hsetnx(this.key(collection), name, JSON.stringify(rec))) === 0) {
      throw new AppError(
        `A task named ${quoted(name)} already exists. Update it with PUT /api/v1/tasks/${collection}/${name}, or choose another name.`,
        { status: 409, type: 'conflict_error', code: 'task_exists', param: 'name' },
      );
    }
    return rec;
  }

  async find(collection: string, name: string): Promise<TaskRecord | null> {
    if (taskNameProblem(name)) return null;
    const raw = await this.redis.hget(this.key(collection), name);
    return raw === null ? null : (JSON.parse(raw) as TaskRecord);
  }

  async get(collection: string, name: string): Promise<TaskRecord> {
    const rec = await this.find(collection, name);
    if (!rec) throw this.noTask(name);
    return rec;
  }

  async list(collection: string): Promise<TaskRecord[]> {
    const all = await this.redis.hvals(this.key(collection));
    return all.map((r) => JSON.parse(r) as TaskRecord).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** A partial update (Jetty's PUT): `workflow` and `description` when given; `{}` changes nothing. */
  async update(collection: string, name: string, body: Record<string, unknown>): Promise<TaskRecord> {
    const rec = await this.get(collection, name);
    const next: TaskRecord = {
      ...rec,
      ...(body.workflow !== undefined ? { workflow: checkWorkflow(body.workflow, 'workflow') } : {}),
      ...(body.description !== undefined
        ? { description: description(body.description, 'description') }
        : {}),
      updated: new Date().toISOString(),
    };
    await this.redis.hset(this.key(collection), name, JSON.stringify(next));
    return next;
  }

  async delete(collection: string, name: string): Promise<void> {
    if (taskNameProblem(name) || (await this.redis.hdel(this.key(collection), name)) === 0) {
      throw this.noTask(name);
    }
  }
}
