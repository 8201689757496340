/**
 * `npm run jetty -- <command>`: the operator's tool for collections, API keys and environment
 * variables, working directly on Redis with the server's configuration (REDIS_URL,
 * JETTY_KEY_PREFIX, JETTY_MASTER_KEY or DATA_DIR/master.key). A key is printed once, when it is
 * made; a value is read from stdin, so it stays out of shell history and process lists.
 */
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../config/index.js';
import { isAppError } from '../errors.js';
import { ensureBootstrap } from '../tenancy/bootstrap.js';
import { loadMasterKey } from '../tenancy/master-key-file.js';
import { generateMasterKey } from '../tenancy/secrets.js';
import { TenancyStore } from '../tenancy/store.js';

const USAGE = `usage: npm run jetty -- <command>

  collections create <name> [--description <text>]   make a collection and its first API key
  collections list
  keys create <collection> [--name <label>]          make another API key (printed once)
  keys list <collection>
  keys revoke <collection> <key-id>
  env list <collection>                              variable names (values stay hidden)
  env set <collection> <NAME>                        value read from stdin
  env unset <collection> <NAME>
  settings show <collection>                         budget settings and today's spend
  settings set <collection> <field> <value|none>     field: default_max_cost_usd, default_max_tokens,
                                                     daily_spend_limit_usd; none clears it
  bootstrap <collection>                             idempotent: the collection, and a key if it has none
  master-key                                         print a new random JETTY_MASTER_KEY
`;

class UsageError extends Error {}

function option(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined) throw new UsageError(`${flag} needs a value`);
  args.splice(i, 2);
  return v;
}

function positional(args: string[], n: number, what: string): string {
  const v = args[n];
  if (v === undefined) throw new UsageError(`missing ${what}`);
  return v;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('value (end with Ctrl-D): ');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  // One trailing newline is the shell's, not the value's.
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

const out = (line: string): void => void process.stdout.write(`${line}\n`);

async function run(argv: string[]): Promise<void> {
  const [group, verb, ...rest] = argv;
  if (group === 'master-key') return out(generateMasterKey());
  if (!group || group === 'help' || group === '--help') return void process.stdout.write(USAGE);

  const config = loadConfig(process.env, hostname());
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const master = await loadMasterKey(config.masterKey, config.dataDir);
    const store = new TenancyStore(redis, config.keyPrefix, master.key);
    const args = [...rest];
    switch (`${group} ${verb ?? ''}`.trim()) {
      case 'collections create': {
        const description = option(args, '--description');
        const name = positional(args, 0, '<name>');
        await store.createCollection({ name, description });
        const key = await store.createApiKey(name, { name: 'first' });
        out(`collection ${name} created. Its API key (shown this once):`);
        return out(key.key);
      }
      case 'collections list':
        for (const c of await store.listCollections()) out(`${c.name}\t${c.created_at}\t${c.description}`);
        return;
      case 'keys create': {
        const label = option(args, '--name');
        const key = await store.createApiKey(positional(args, 0, '<collection>'), { name: label });
        process.stderr.write(`key ${key.id} created (shown this once):\n`);
        return out(key.key);
      }
      case 'keys list':
        for (const k of await store.listApiKeys(positional(args, 0, '<collection>'))) {
          out(
            `${k.id}\t${k.prefix}…\t${k.name}\tcreated ${k.created_at}\tlast used ${k.last_used_at ?? 'never'}`,
          );
        }
        return;
      case 'keys revoke':
        await store.revokeApiKey(positional(args, 0, '<collection>'), positional(args, 1, '<key-id>'));
        return out('revoked');
      case 'env list': {
        const env = await store.getEnvironment(positional(args, 0, '<collection>'), { reveal: false });
        for (const [name, at] of Object.entries(env.updated_at)) out(`${name}\tset ${at}`);
        return;
      }
      case 'env set': {
        const collection = positional(args, 0, '<collection>');
        const name = positional(args, 1, '<NAME>');
        await store.patchEnvironment(collection, { [name]: await readStdin() });
        return out(`${name} set in ${collection}`);
      }
      case 'env unset': {
        const collection = positional(args, 0, '<collection>');
        const name = positional(args, 1, '<NAME>');
        await store.patchEnvironment(collection, { [name]: null });
        return out(`${name} removed from ${collection}`);
      }
      case 'settings show': {
        const collection = positional(args, 0, '<collection>');
        const settings = await store.getBudgetSettings(collection);
        for (const [k, v] of Object.entries(settings)) out(`${k}\t${v ?? 'none'}`);
        out(`server_max_cost_usd\t${config.budget.maxCostUsd}`);
        out(`server_max_tokens\t${config.budget.maxTokens}`);
        const today = await store.spendToday(collection);
        return out(`spent_today_usd\t${today.usd.toFixed(6)}\tresets ${today.resetsAt.toISOString()}`);
      }
      case 'settings set': {
        const collection = positional(args, 0, '<collection>');
        const field = positional(args, 1, '<field>');
        const raw = positional(args, 2, '<value|none>');
        const value = raw === 'none' ? null : Number(raw);
        if (value !== null && !Number.isFinite(value))
          throw new UsageError(`${field} takes a number or none`);
        await store.patchBudgetSettings(collection, { [field]: value }, config.budget);
        return out(`${field} of ${collection} is now ${raw}`);
      }
      case 'bootstrap': {
        const r = await ensureBootstrap(store, { collection: positional([verb ?? ''], 0, '<collection>') });
        if (r.generatedKey) {
          process.stderr.write(
            `collection ${r.collection.name} ready; its first API key (shown this once):\n`,
          );
          return out(r.generatedKey);
        }
        return void process.stderr.write(`collection ${r.collection.name} ready; it already has a key\n`);
      }
      default:
        throw new UsageError(`unknown command "${argv.join(' ')}"`);
    }
  } finally {
    redis.disconnect();
  }
}

run(process.argv.slice(2)).catch((err) => {
  if (err instanceof UsageError) process.stderr.write(`${err.message}\n\n${USAGE}`);
  else if (err instanceof ConfigError || isAppError(err)) process.stderr.write(`${err.message}\n`);
  else process.stderr.write(`error: ${(err as Error).message}\n`);
  process.exit(err instanceof UsageError ? 64 : 1);
});
