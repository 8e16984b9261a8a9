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

  test('TLS: 1.2 and 1.3 with Mozilla intermediate ciphers and HTTP/2 by default; Docker Flow Proxy variables change them', () => {
    const plain = load([]);
    expect(plain.tls).toMatchObject({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', http2: true, sessionTickets: true, preferServerCiphers: true });
    expect(plain.tls.ciphers).toContain('ECDHE-ECDSA-AES128-GCM-SHA256');
    expect(plain.tls.ciphers).not.toMatch(/CBC|RC4|3DES|SHA1?(:|$)/);
    const tuned = load([], {
      SSL_BIND_OPTIONS: 'no-sslv3 ssl-min-ver TLSv1.3 no-tls-tickets prefer-client-ciphers',
      SSL_BIND_CIPHERS: 'ECDHE-RSA-AES128-GCM-SHA256',
      ENABLE_H2: 'false',
      HTTPS_ONLY: 'true',
    });
    expect(tuned.tls).toMatchObject({ minVersion: 'TLSv1.3', sessionTickets: false, preferServerCiphers: false, http2: false, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
    expect(tuned.httpsOnly).toBe(true);
    expect(load([], {}).acme).toMatchObject({ directoryUrl: 'https://acme-v02.api.letsencrypt.org/directory', renewBeforeDays: 30 });
    expect(load([], { ACME_EMAIL: 'ops@example.com', ACME_RENEW_DAYS: '20' }).acme).toMatchObject({ email: 'ops@example.com', renewBeforeDays: 20 });
  });

  test.each([
    [{ SSL_BIND_OPTIONS: 'ssl-min-ver TLSv1.0' }, 'SSL_BIND_OPTIONS'],
    [{ SSL_BIND_OPTIONS: 'crt /etc/passwd' }, 'SSL_BIND_OPTIONS'],
    [{ SSL_BIND_OPTIONS: 'no-tlsv12 no-tlsv13' }, 'SSL_BIND_OPTIONS'],
    [{ SSL_BIND_CIPHERS: 'ECDHE-RSA-AES128-GCM-SHA256 crt-list /x' }, 'SSL_BIND_CIPHERS'],
    [{ ENABLE_H2: 'yes' }, 'ENABLE_H2'],
    [{ ACME_DIRECTORY: 'http://insecure.example/dir' }, 'ACME_DIRECTORY'],
    [{ ACME_EMAIL: 'not an address' }, 'ACME_EMAIL'],
  ])('TLS setting %o is refused, naming %s', (env, name) => {
    expect(() => load([], env)).toThrow(SettingsError);
    expect(() => load([], env)).toThrow(name);
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
