import { hostname } from 'node:os';
import { pino } from 'pino';
import { type Config, ConfigError, loadConfig } from '../config/index.js';
import { RedisStartupError } from '../queue/redis-wait.js';
import { ObjectStoreError } from '../storage/object-store.js';
import { MasterKeyError } from '../tenancy/secrets.js';
import { type Role, startServer } from './compose.js';

/**
 * The process entry: `--role api`, `--role worker`, or `--role all` (the default: one process
 * for a single machine). The only place that reads process.env, listens, or handles signals.
 */
function roleFromArgs(argv: string[]): Role {
  const i = argv.indexOf('--role');
  const v = i >= 0 ? argv[i + 1] : (process.env.JETTY_ROLE ?? 'all');
  if (v === 'api' || v === 'worker' || v === 'all') return v;
  throw new ConfigError(`--role must be api, worker or all; got "${v}"`);
}

async function main(argv = process.argv.slice(2)): Promise<void> {
  let config: Config;
  let role: Role;
  try {
    role = roleFromArgs(argv);
    config = loadConfig(process.env, hostname());
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = pino({
    level: config.logLevel,
    base: { role, instance: config.instance },
    redact: {
      paths: ['req.headers.authorization', 'req.headers["x-api-key"]', '*.token', '*.apiKey', '*.env'],
      censor: '[redacted]',
    },
  });
  const server = await startServer(config, { role, logger });
  if (server.url) logger.info({ url: server.url }, 'api listening');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await server.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  // One JSON line, like every other log line. A refusal the operator fixes by configuration (a
  // port in use, another master key, an object store that cannot be used, a Redis that never
  // answered) carries its message only: it says how, a stack would bury it.
  const known =
    err instanceof MasterKeyError ||
    err instanceof ConfigError ||
    err instanceof RedisStartupError ||
    err instanceof ObjectStoreError;
  const line = known
    ? { level: 'fatal', msg: (err as Error).message }
    : { level: 'fatal', msg: `fatal: ${(err as Error).message ?? String(err)}`, stack: (err as Error).stack };
  process.stderr.write(`${JSON.stringify(line)}\n`);
  process.exit(known && !(err instanceof RedisStartupError) ? 2 : 1);
});
