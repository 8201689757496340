import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { parsePorts, portAllowed } from '../../src/egress/limits.js';
import { networkCommands } from '../../src/egress/needs-network.js';
import {
  hostMatches,
  intersectPatterns,
  parsePattern,
  parsePatterns,
  patternWithin,
} from '../../src/egress/patterns.js';
import {
  admits,
  type EgressPolicy,
  NO_EGRESS,
  OPEN_EGRESS,
  resolveRunEgress,
  runbookNetworkSchema,
} from '../../src/egress/policy.js';
import { AppError } from '../../src/errors.js';
import { AddressPolicy } from '../../src/net/address-policy.js';
import { applyEgressPatch, NO_COLLECTION_EGRESS } from '../../src/tenancy/egress-settings.js';

const allow = (...patterns: string[]): EgressPolicy => ({ mode: 'allowlist', allow: patterns });

describe('host patterns', () => {
  it('accepts names, *.names and addresses, in canonical form', () => {
    expect(parsePattern('PyPI.org.')).toEqual({ pattern: 'pypi.org' });
    expect(parsePattern('*.PythonHosted.org')).toEqual({ pattern: '*.pythonhosted.org' });
    expect(parsePattern('[::1]')).toEqual({ pattern: '::1' });
    expect(parsePattern('127.0.0.2')).toEqual({ pattern: '127.0.0.2' });
  });

  it('refuses what would admit everything or is not a host, saying what to write', () => {
    expect(parsePattern('*')).toEqual({ error: expect.stringContaining('use the policy "open"') });
    expect(parsePattern('*.com')).toEqual({ error: expect.stringContaining('whole top-level domain') });
    expect(parsePattern('files.*.org')).toEqual({ error: expect.stringContaining('whole first label') });
    expect(parsePattern('http://pypi.org')).toEqual({
      error: expect.stringContaining('neither a host name'),
    });
    expect(parsePatterns(Array.from({ length: 201 }, (_, i) => `h${i}.example.com`))).toEqual({
      error: 'at most 200 host patterns; got 201',
    });
  });

  it('matches a name exactly, or the names under a wildcard (not the domain itself, never an address)', () => {
    expect(hostMatches('pypi.org', 'PYPI.ORG.')).toBe(true);
    expect(hostMatches('pypi.org', 'files.pypi.org')).toBe(false);
    expect(hostMatches('*.pypi.org', 'files.pypi.org')).toBe(true);
    expect(hostMatches('*.pypi.org', 'a.b.pypi.org')).toBe(true);
    expect(hostMatches('*.pypi.org', 'pypi.org')).toBe(false);
    expect(hostMatches('*.pypi.org', 'evilpypi.org')).toBe(false);
    expect(hostMatches('*.0.0.1', '127.0.0.1')).toBe(false);
    expect(hostMatches('::1', '[::1]')).toBe(true);
  });

  it('knows when one pattern lies within another, and intersects lists exactly', () => {
    expect(patternWithin('files.pypi.org', '*.pypi.org')).toBe(true);
    expect(patternWithin('*.a.pypi.org', '*.pypi.org')).toBe(true);
    expect(patternWithin('pypi.org', '*.pypi.org')).toBe(false);
    expect(patternWithin('*.pypi.org', 'files.pypi.org')).toBe(false);
    expect(
      intersectPatterns(['*.pypi.org', 'github.com'], ['files.pypi.org', '*.github.com', 'x.org']),
    ).toEqual(['files.pypi.org']);
    expect(intersectPatterns(['*.org'], ['*.pypi.org', 'a.pypi.org'])).toEqual(['*.pypi.org']);
  });
});

describe('a run’s egress policy', () => {
  const resolve = (
    operator: EgressPolicy,
    collection: EgressPolicy | null,
    runbook?: EgressPolicy,
    enabled?: boolean,
  ) =>
    resolveRunEgress({
      operator,
      collection: {
        name: 'acme',
        settings: collection
          ? { egress_policy: collection.mode, egress_allow: collection.allow }
          : NO_COLLECTION_EGRESS,
      },
      runbook,
      networkEnabled: enabled,
    });

  it('takes the collection’s setting, else the operator’s', () => {
    expect(resolve(OPEN_EGRESS, null).policy).toEqual(OPEN_EGRESS);
    expect(resolve(OPEN_EGRESS, allow('pypi.org')).policy).toEqual(allow('pypi.org'));
    expect(resolve(NO_EGRESS, null).policy).toEqual(NO_EGRESS);
  });

  it('lets a runbook narrow, never widen, and says what it cut', () => {
    const narrowed = resolve(OPEN_EGRESS, allow('*.pypi.org', 'github.com'), allow('files.pypi.org'));
    expect(narrowed).toMatchObject({ policy: allow('files.pypi.org'), warnings: [] });

    const widened = resolve(OPEN_EGRESS, allow('*.pypi.org'), OPEN_EGRESS);
    expect(widened.policy).toEqual(allow('*.pypi.org'));
    expect(widened.warnings).toEqual([
      {
        code: 'network_narrowed',
        message: expect.stringContaining(
          'asks for open network, but collection acme’s egress_policy is allowlist (*.pypi.org)',
        ),
      },
    ]);

    const outside = resolve(allow('*.pypi.org'), null, allow('files.pypi.org', 'evil.example.com'));
    expect(outside.policy).toEqual(allow('files.pypi.org'));
    expect(outside.warnings[0]?.message).toContain('hosts outside this server’s policy (evil.example.com)');
    expect(outside.warnings[0]?.message).toContain('the server’s EGRESS_POLICY is allowlist (*.pypi.org)');

    // Nothing in common: no network at all, said as such.
    const disjoint = resolve(allow('pypi.org'), null, allow('npmjs.org'));
    expect(disjoint.policy).toEqual(NO_EGRESS);
    expect(disjoint.warnings[0]?.message).toContain('the run gets none');
  });

  it('maps jetty.network_enabled: false to none, true to the collection’s policy', () => {
    expect(resolve(OPEN_EGRESS, null, undefined, false).policy).toEqual(NO_EGRESS);
    expect(resolve(OPEN_EGRESS, allow('pypi.org'), undefined, true).policy).toEqual(allow('pypi.org'));
  });

  it('admits by the policy only (addresses are the AddressPolicy’s)', () => {
    expect(admits(OPEN_EGRESS, 'anything.example')).toBe(true);
    expect(admits(NO_EGRESS, 'pypi.org')).toBe(false);
    expect(admits(allow('*.pypi.org'), 'files.pypi.org')).toBe(true);
    expect(admits(allow('*.pypi.org'), 'example.com')).toBe(false);
  });
});

describe('the runbook’s network frontmatter', () => {
  const parse = (v: unknown) => runbookNetworkSchema.safeParse(v);

  it('reads none, open, true, a list and {allow}', () => {
    expect(parse('none').data).toEqual(NO_EGRESS);
    expect(parse(false).data).toEqual(NO_EGRESS);
    expect(parse('open').data).toEqual(OPEN_EGRESS);
    expect(parse(true)).toMatchObject({ success: true, data: undefined });
    expect(parse(['*.PyPI.org', 'files.pythonhosted.org']).data).toEqual(
      allow('*.pypi.org', 'files.pythonhosted.org'),
    );
    expect(parse({ allow: ['pypi.org'] }).data).toEqual(allow('pypi.org'));
  });

  it('refuses a bad pattern or an empty list', () => {
    expect(parse(['*']).error?.issues[0]?.message).toContain('use the policy "open"');
    expect(parse([]).error?.issues[0]?.message).toContain('at least one host pattern');
    expect(parse({ hosts: ['x'] }).success).toBe(false);
  });
});

describe('a collection’s egress setting', () => {
  it('may narrow the operator’s policy', () => {
    expect(applyEgressPatch(NO_COLLECTION_EGRESS, { egress_policy: 'none' }, OPEN_EGRESS)).toEqual({
      egress_policy: 'none',
      egress_allow: [],
    });
    expect(
      applyEgressPatch(
        NO_COLLECTION_EGRESS,
        { egress_policy: 'allowlist', egress_allow: ['files.pypi.org'] },
        allow('*.pypi.org'),
      ),
    ).toEqual({ egress_policy: 'allowlist', egress_allow: ['files.pypi.org'] });
    // Back to the operator's: the list goes with the policy.
    expect(
      applyEgressPatch(
        { egress_policy: 'allowlist', egress_allow: ['a.org'] },
        { egress_policy: null },
        OPEN_EGRESS,
      ),
    ).toEqual({ egress_policy: null, egress_allow: [] });
  });

  it('is a 400 naming the field and the server setting when it would widen it', () => {
    const refused = (patch: Parameters<typeof applyEgressPatch>[1], operator: EgressPolicy) => {
      try {
        applyEgressPatch(NO_COLLECTION_EGRESS, patch, operator);
      } catch (e) {
        return e as AppError;
      }
      throw new Error('not refused');
    };
    const open = refused({ egress_policy: 'open' }, allow('pypi.org'));
    expect(open).toBeInstanceOf(AppError);
    expect(open).toMatchObject({ status: 400, param: 'egress_policy', code: 'egress_over_maximum' });
    expect(open.message).toContain('EGRESS_POLICY');
    const wider = refused(
      { egress_policy: 'allowlist', egress_allow: ['*.pypi.org'] },
      allow('files.pypi.org'),
    );
    expect(wider).toMatchObject({ param: 'egress_allow', code: 'egress_over_maximum' });
    expect(refused({ egress_policy: 'allowlist' }, OPEN_EGRESS).message).toContain('needs egress_allow');
    expect(refused({ egress_allow: ['pypi.org'] }, OPEN_EGRESS).message).toContain(
      'egress_allow is read only with egress_policy "allowlist"',
    );
    expect(refused({ egress_policy: 'allowlist', egress_allow: ['*'] }, OPEN_EGRESS).param).toBe(
      'egress_allow',
    );
  });
});

describe('what a runbook fetches (the environment check’s network part)', () => {
  it('finds installs, downloads and clones in code, not in prose', () => {
    const runbook = [
      'Do not pip install anything globally.',
      '| Tool | Install |',
      '|---|---|',
      '| pandas | `pip install pandas` |',
      '```bash',
      'git clone https://example.com/repo.git',
      'curl -sSL https://example.com/data.csv -o data.csv',
      'npx -y some-tool',
      '```',
    ].join('\n');
    expect(networkCommands(runbook)).toEqual(['pip install', 'npx', 'curl', 'git clone']);
    expect(networkCommands('```bash\npython3 make_report.py\ncurl --version\n```')).toEqual([]);
    expect(networkCommands('```bash\npip install --no-index ./wheels/x.whl\n```')).toEqual([]);
  });
});

describe('egress configuration', () => {
  const base = { DATA_DIR: '/tmp/x' };
  const fails = (env: Record<string, string>) => {
    try {
      loadConfig({ ...base, ...env });
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error('accepted');
  };

  it('defaults to no network, ports 80 and 443', () => {
    const c = loadConfig(base);
    expect(c.egress.policy).toEqual(NO_EGRESS);
    expect(portAllowed(c.egress.limits.ports, 443)).toBe(true);
    expect(portAllowed(c.egress.limits.ports, 25)).toBe(false);
  });

  it('reads an allow list and its bounds', () => {
    const c = loadConfig({
      ...base,
      EGRESS_POLICY: 'allowlist',
      EGRESS_ALLOW: 'pypi.org, *.pythonhosted.org',
      EGRESS_PORTS: '443,8000-8099',
      EGRESS_MAX_BYTES: '100m',
    });
    expect(c.egress.policy).toEqual(allow('pypi.org', '*.pythonhosted.org'));
    expect(c.egress.limits.maxBytes).toBe(100 * 1024 ** 2);
    expect(portAllowed(c.egress.limits.ports, 8050)).toBe(true);
    expect(parsePorts('*')).toEqual({ ports: 'any' });
  });

  it('stops with a message naming the variable and the fix', () => {
    expect(fails({ EGRESS_POLICY: 'allowlist' })).toContain('EGRESS_ALLOW: EGRESS_POLICY=allowlist needs');
    expect(fails({ EGRESS_ALLOW: 'pypi.org' })).toContain(
      'EGRESS_ALLOW: is read only with EGRESS_POLICY=allowlist',
    );
    expect(fails({ EGRESS_POLICY: 'all' })).toContain('EGRESS_POLICY: must be one of none, allowlist, open');
    expect(fails({ EGRESS_PORTS: '0' })).toContain('EGRESS_PORTS: "0" is not a port');
    expect(fails({ SANDBOX_ALLOW_NETWORK: 'true' })).toContain(
      'SANDBOX_ALLOW_NETWORK: is no longer supported',
    );
    expect(fails({ SANDBOX_ALLOW_NETWORK: 'true' })).toContain('Set EGRESS_POLICY=open');
    expect(() => loadConfig({ ...base, SANDBOX_ALLOW_NETWORK: 'false' })).not.toThrow();
  });
});

describe('the worker’s own addresses', () => {
  it('are refused like private ones, unless the operator lists them', async () => {
    const own = () => ['203.0.113.10', 'fe80::1'];
    const policy = new AddressPolicy([], async () => [{ address: '203.0.113.10', family: 4 }], own);
    await expect(policy.resolve('me.example')).rejects.toThrow(
      "refused to connect to me.example (203.0.113.10): a host-local (this worker's own) address; an operator can allow it in NETWORK_ALLOW_PRIVATE",
    );
    expect(new AddressPolicy([], undefined, own).refusal('x', '::ffff:203.0.113.10')).toBe(
      "host-local (this worker's own)",
    );
    const allowed = new AddressPolicy([{ kind: 'cidr', value: '203.0.113.10/32' }], undefined, own);
    expect(allowed.refusal('x', '203.0.113.10')).toBeNull();
  });
});
