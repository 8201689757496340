/**
 * `jetty admin ...` (and `npm run jetty -- <the same words>`): the operator's bootstrap tool for
 * collections, API keys and environment variables. Unlike every other command it works on Redis
 * directly, with the server's own configuration (REDIS_URL, JETTY_KEY_PREFIX, JETTY_MASTER_KEY or
 * DATA_DIR/master.key), so it runs where the server runs, before any key exists. A key is printed
 * once, when it is made; a value is read from stdin, so it stays out of shell history and process
 * lists.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { TenancyStore } from '../../tenancy/store.js';
import { type CliContext, type Command, parse, println } from '../command.js';
import { CliError, EXIT, type ExitCode, usageError } from '../exit.js';

interface AdminVerb {
  /** "collections create" */
  words: string;
  usage: string;
  options?: Record<string, { type: 'string' }>;
  run(
    store: TenancyStore,
    args: string[],
    values: Record<string, string | undefined>,
    ctx: CliContext,
  ): Promise<void>;
}

const arg = (args: string[], n: number, what: string): string => {
  const v = args[n];
  if (v === undefined) throw usageError(`missing ${what}`);
  return v;
};

const VERBS: AdminVerb[] = [
  {
    words: 'collections create',
    usage: 'collections create <name> [--description <text>]   make a collection and its first API key',
    options: { description: { type: 'string' } },
    async run(store, args, v, ctx) {
      const name = arg(args, 0, '<name>');
      await store.createCollection({ name, description: v.description });
      const key = await store.createApiKey(name, { name: 'first' });
      println(ctx.stdout, `collection ${name} created. Its API key (shown this once):`);
      println(ctx.stdout, key.key);
    },
  },
  {
    words: 'collections list',
    usage: 'collections list',
    async run(store, _args, _v, ctx) {
      for (const c of await store.listCollections())
        println(ctx.stdout, `${c.name}\t${c.created_at}\t${c.description}`);
    },
  },
  {
    words: 'keys create',
    usage: 'keys create <collection> [--name <label>]          make another API key (printed once)',
    options: { name: { type: 'string' } },
    async run(store, args, v, ctx) {
      const key = await store.createApiKey(arg(args, 0, '<collection>'), { name: v.name });
      println(ctx.stderr, `key ${key.id} created (shown this once):`);
      println(ctx.stdout, key.key);
    },
  },
  {
    words: 'keys list',
    usage: 'keys list <collection>',
    async run(store, args, _v, ctx) {
      for (const k of await store.listApiKeys(arg(args, 0, '<collection>'))) {
        println(
          ctx.stdout,
          `${k.id}\t${k.prefix}…\t${k.name}\tcreated ${k.created_at}\tlast used ${k.last_used_at ?? 'never'}`,
        );
      }
    },
  },
  {
    words: 'keys revoke',
    usage: 'keys revoke <collection> <key-id>',
    async run(store, args, _v, ctx) {
      await store.revokeApiKey(arg(args, 0, '<collection>'), arg(args, 1, '<key-id>'));
      println(ctx.stdout, 'revoked');
    },
  },
  {
    words: 'env list',
    usage: 'env list <collection>                              variable names (values stay hidden)',
    async run(store, args, _v, ctx) {
      const env = await store.getEnvironment(arg(args, 0, '<collection>'), { reveal: false });
      for (const [name, at] of Object.entries(env.updated_at)) println(ctx.stdout, `${name}\tset ${at}`);
    },
  },
  {
    words: 'env set',
    usage: 'env set <collection> <NAME>                        value read from stdin',
    async run(store, args, _v, ctx) {
      const collection = arg(args, 0, '<collection>');
      const name = arg(args, 1, '<NAME>');
      await store.patchEnvironment(collection, { [name]: await readStdin(ctx) });
      println(ctx.stdout, `${name} set in ${collection}`);
    },
  },
  {
    words: 'env unset',
    usage: 'env unset <collection> <NAME>',
    async run(store, args, _v, ctx) {
      const collection = arg(args, 0, '<collection>');
      const name = arg(args, 1, '<NAME>');
      await store.patchEnvironment(collection, { [name]: null });
      println(ctx.stdout, `${name} removed from ${collection}`);
    },
  },
  {
    words: 'settings show',
    usage: "settings show <collection>                         budget settings and today's spend",
    async run(store, args, _v, ctx) {
      const collection = arg(args, 0, '<collection>');
      const budget = await serverBudget(ctx);
      for (const [k, v] of Object.entries(await store.getBudgetSettings(collection)))
        println(ctx.stdout, `${k}\t${v ?? 'none'}`);
      println(ctx.stdout, `server_max_cost_usd\t${budget.maxCostUsd}`);
      println(ctx.stdout, `server_max_tokens\t${budget.maxTokens}`);
      const today = await store.spendToday(collection);
      println(ctx.stdout, `spent_today_usd\t${today.usd.toFixed(6)}\tresets ${today.resetsAt.toISOString()}`);
    },
  },
  {
    words: 'settings set',
    usage:
      'settings set <collection> <field> <value|none>     field: default_max_cost_usd, default_max_tokens,\n' +
      '                                                     daily_spend_limit_usd; none clears it',
    async run(store, args, _v, ctx) {
      const collection = arg(args, 0, '<collection>');
      const field = arg(args, 1, '<field>');
      const raw = arg(args, 2, '<value|none>');
      const value = raw === 'none' ? null : Number(raw);
      if (value !== null && !Number.isFinite(value)) throw usageError(`${field} takes a number or none`);
      await store.patchBudgetSettings(collection, { [field]: value }, await serverBudget(ctx));
      println(ctx.stdout, `${field} of ${collection} is now ${raw}`);
    },
  },
  {
    words: 'bootstrap',
    usage:
      'bootstrap <collection>                             idempotent: the collection, and a key if it has none',
    async run(store, args, _v, ctx) {
      const { ensureBootstrap } = await import('../../tenancy/bootstrap.js');
      const r = await ensureBootstrap(store, { collection: arg(args, 0, '<collection>') });
      if (r.generatedKey) {
        println(ctx.stderr, `collection ${r.collection.name} ready; its first API key (shown this once):`);
        println(ctx.stdout, r.generatedKey);
      } else {
        println(ctx.stderr, `collection ${r.collection.name} ready; it already has a key`);
      }
    },
  },
];

export const ADMIN_HELP = `usage: jetty admin <command>     (also: npm run jetty -- <command>)

Bootstrap commands for the operator: they write Redis directly with the server's configuration
(REDIS_URL, JETTY_KEY_PREFIX, JETTY_MASTER_KEY or DATA_DIR/master.key), so run them where the
server runs. Everything else goes through the HTTP API.

${[
  ...VERBS.map((v) => v.usage),
  'master-key                                         print a new random JETTY_MASTER_KEY',
]
  .map((u) => `  ${u}`)
  .join('\n')}`;

/** The words `jetty` accepts without `admin` in front, as `npm run jetty -- ...` always did. */
export const ADMIN_GROUPS = ['collections', 'keys', 'env', 'settings', 'bootstrap', 'master-key'];

export const adminCommand: Command = {
  name: 'admin',
  summary: 'bootstrap: collections, API keys, environment variables (writes Redis directly)',
  help: ADMIN_HELP,
  async run(argv, ctx) {
    const [group, ...rest] = argv;
    if (group === 'master-key') {
      const { generateMasterKey } = await import('../../tenancy/secrets.js');
      println(ctx.stdout, generateMasterKey());
      return EXIT.ok;
    }
    if (!group || group === 'help' || group === '--help' || group === '-h') {
      println(ctx.stdout, ADMIN_HELP);
      return EXIT.ok;
    }
    const verb = VERBS.find((v) => v.words === group || v.words === `${group} ${rest[0]}`);
    if (!verb) throw usageError(`unknown admin command "${argv.join(' ')}"\n\n${ADMIN_HELP}`);
    const { values, positionals } = parse(argv.slice(verb.words.split(' ').length), verb.options ?? {});
    if (values.help) {
      println(ctx.stdout, `usage: jetty admin ${verb.usage}`);
      return EXIT.ok;
    }
    return withStore(ctx, async (store) => {
      await verb.run(store, positionals, values as Record<string, string | undefined>, ctx);
      return EXIT.ok;
    });
  },
};

/** The server's budget maxima (RUN_MAX_COST_USD, RUN_MAX_TOKENS), from the same configuration. */
async function serverBudget(ctx: CliContext) {
  const { loadConfig } = await import('../../config/index.js');
  return loadConfig(ctx.env, hostname()).budget;
}

async function withStore(ctx: CliContext, fn: (store: TenancyStore) => Promise<ExitCode>): Promise<ExitCode> {
  // Loaded here: the HTTP commands never need Redis, nor its start-up cost.
  const [
    { Redis },
    { loadConfig },
    { loadMasterKey, masterKeyCheckKey },
    { MasterKeyError },
    { TenancyStore },
    { isAppError },
  ] = await Promise.all([
    import('ioredis'),
    import('../../config/index.js'),
    import('../../tenancy/master-key-file.js'),
    import('../../tenancy/secrets.js'),
    import('../../tenancy/store.js'),
    import('../../errors.js'),
  ]);
  const config = loadConfig(ctx.env, hostname());
  const redis: Redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => undefined);
  try {
    try {
      await redis.connect();
    } catch (err) {
      throw new CliError(`cannot reach Redis at REDIS_URL (${(err as Error).message})`, EXIT.unreachable);
    }
    // Redis keeps a check value of the server's master key: a CLI with another key (or none, far
    // from the server's DATA_DIR) refuses rather than encrypt what the server cannot read.
    // With an object store (several hosts) it never makes a key file, as the server does not.
    const master = await loadMasterKey(
      config.masterKey,
      config.dataDir,
      { redis, key: masterKeyCheckKey(config.keyPrefix) },
      { multiHost: config.blobs.store.kind === 's3' },
    );
    return await fn(new TenancyStore(redis, config.keyPrefix, master.key));
  } catch (err) {
    if (isAppError(err)) throw new CliError(err.message, EXIT.apiError);
    if (err instanceof MasterKeyError) throw new CliError(err.message, EXIT.usage);
    throw err;
  } finally {
    redis.disconnect();
  }
}

async function readStdin(ctx: CliContext): Promise<string> {
  if (ctx.stdin.isTTY) ctx.stderr.write('value (end with Ctrl-D): ');
  const chunks: Buffer[] = [];
  for await (const c of ctx.stdin) chunks.push(Buffer.from(c as Buffer));
  // One trailing newline is the shell's, not the value's.
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}
