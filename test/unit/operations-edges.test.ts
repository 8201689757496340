import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseOrigins } from '../../src/config/index.js';
import { cookieValue, isValidSession, makeSession, sessionCookie } from '../../src/http/admin-session.js';
import { maskJobData } from '../../src/http/routes/admin-queues.js';

const TOKEN = 't'.repeat(40);

describe('the queue dashboard session', () => {
  it('accepts its own cookie until it expires, and nothing signed with another token', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const s = makeSession(TOKEN, 3600, now);
    expect(isValidSession(s, TOKEN, now + 1000)).toBe(true);
    expect(isValidSession(s, TOKEN, now + 3600 * 1000)).toBe(false);
    expect(isValidSession(s, 'u'.repeat(40), now)).toBe(false);
    // Moving the expiry breaks the signature.
    const [exp, mac] = s.split('.');
    expect(isValidSession(`${Number(exp) + 3600}.${mac}`, TOKEN, now)).toBe(false);
    expect(isValidSession('garbage', TOKEN, now)).toBe(false);
    expect(s).not.toContain(TOKEN);
  });

  it('is an HttpOnly, SameSite=Strict cookie under /admin, Secure over https', () => {
    const c = sessionCookie('v', 60, true);
    expect(c).toBe('jetty_admin=v; Path=/admin; Max-Age=60; HttpOnly; SameSite=Strict; Secure');
    expect(sessionCookie('v', 60, false)).not.toContain('Secure');
    expect(cookieValue('a=1; jetty_admin=xyz; b=2', 'jetty_admin')).toBe('xyz');
    expect(cookieValue('a=1', 'jetty_admin')).toBeNull();
  });
});

describe('job data on the dashboard', () => {
  it("masks a webhook's secret, a run's encrypted secrets and its MCP servers' env and headers", () => {
    const masked = maskJobData({
      runId: 'r1',
      secret: 'whsec_abc',
      secretParams: 'v1:ciphertext',
      mcpServers: [
        { name: 'a', transport: 'stdio', command: 'x', env: { GITHUB_TOKEN: 'ghp_123' } },
        {
          name: 'b',
          transport: 'http',
          url: 'https://mcp.example',
          headers: { authorization: 'Bearer s3cr3t' },
        },
      ],
    });
    const text = JSON.stringify(masked);
    for (const secret of ['whsec_abc', 'ciphertext', 'ghp_123', 's3cr3t']) expect(text).not.toContain(secret);
    expect(text).toContain('GITHUB_TOKEN');
    expect(text).toContain('"runId":"r1"');
  });
});

describe('CORS_ORIGINS', () => {
  it('takes origins as browsers send them, or *', () => {
    expect(parseOrigins('')).toEqual({ origins: [] });
    expect(parseOrigins('https://app.example, http://localhost:3000')).toEqual({
      origins: ['https://app.example', 'http://localhost:3000'],
    });
    expect(parseOrigins('*')).toEqual({ origins: ['*'] });
  });

  it('refuses what a browser would never send, naming the variable', () => {
    for (const bad of [
      'https://app.example/',
      'https://app.example/path',
      'app.example',
      'https://*.example',
    ]) {
      expect(() => loadConfig({ CORS_ORIGINS: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ CORS_ORIGINS: bad })).toThrow(/CORS_ORIGINS/);
    }
  });

  it('has defaults for the rate limit, metrics and the dashboard session', () => {
    const c = loadConfig({});
    expect(c.corsOrigins).toEqual([]);
    expect(c.rateLimit).toEqual({ max: 600, windowSec: 60 });
    expect(c.metricsToken).toBeUndefined();
    expect(c.adminSessionTtlSec).toBe(8 * 3600);
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/);
    expect(() => loadConfig({ RATE_LIMIT_MAX: '-1' })).toThrow(/RATE_LIMIT_MAX/);
  });
});
