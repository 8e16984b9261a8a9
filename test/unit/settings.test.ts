import { describe, expect, test } from 'vitest';
import { loadSettings, SettingsError } from '../../src/settings/settings.js';
import type { Settings } from '../../src/settings/settings.js';

const load = (argv: string[], env: Record<string, string> = {}) => loadSettings(argv, env) as Settings;

describe('settings', () => {
  test('defaults follow Docker Flow Proxy; swarm mode changes DNS and address mode', () => {
    const plain = load([]);
    expect([plain.httpPort, plain.httpsPort, plain.apiPort, plain.dataPlane, plain.addressMode]).toEqual([80, 443, 8080, 'auto', 'vip']);
    expect(plain.timeouts).toMatchObject({ connect: 5, client: 20, server: 20, tunnel: 3600, httpRequest: 5 });
    const swarm = load([], { MODE: 'swarm' });
    expect(swarm.dnsServers).toEqual(['127.0.0.11:53']);
    expect(swarm.addressMode).toBe('tasks');
  });

  test('flags win over environment variables', () => {
    expect(load(['--http-port', '8000'], { HTTP_PORT: '9000' }).httpPort).toBe(8000);
    expect(load([], { HTTP_PORT: '9000', BIND_PORTS: '81, 82', TIMEOUT_SERVER: '60' })).toMatchObject({
      httpPort: 9000,
      extraHttpPorts: [81, 82],
      timeouts: { server: 60 },
    });
  });

  test.each([
    [['--api-port', '80a'], {}, '--api-port'],
    [['--data-plane', 'nginx'], {}, '--data-plane'],
    [[], { TIMEOUT_SERVER: '-1' }, 'TIMEOUT_SERVER'],
    [[], { BIND_PORTS: '81,x' }, 'BIND_PORTS'],
    [['--http-port', '8080'], {}, '8080 is used twice'],
    [['--dns-servers', 'dns.example:53'], {}, '--dns-servers'],
    [['--api-token', 'short'], {}, 'API token'],
    [[], { API_USER: 'u' }, 'API_PASS'],
    [[], { STATS_USER: 'a', STATS_PASS: 'b c' }, 'STATS_PASS'],
    [['--no-such-flag'], {}, 'no-such-flag'],
  ] as [string[], Record<string, string>, string][])('%j %j is refused naming %s', (argv, env, named) => {
    expect(() => loadSettings(argv, env)).toThrow(SettingsError);
    expect(() => loadSettings(argv, env)).toThrow(named);
  });
});

describe('data plane choice', () => {
  test('auto picks HAProxy when it runs, the built-in plane otherwise; an explicit choice is kept', async () => {
    const { choosePlane } = await import('../../src/app.js');
    expect(await choosePlane(load([]))).toBe('haproxy');
    expect(await choosePlane(load(['--haproxy-bin', '/nonexistent/haproxy']))).toBe('builtin');
    expect(await choosePlane(load(['--data-plane', 'builtin']))).toBe('builtin');
  });
});
