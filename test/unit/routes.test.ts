import { describe, expect, test } from 'vitest';
import { normalizeHost, PrefixTree, RouteIndex } from '../../src/routes/match.js';
import { parseServiceParams } from '../../src/routes/params.js';
import { snapshotOf } from '../support/snapshot.js';

describe('parseServiceParams', () => {
  test('indexed parameters make destinations; lists are split; domains lower-cased', () => {
    const parsed = parseServiceParams({
      serviceName: 'shop',
      servicePath: '/a, /b',
      port: '80',
      'servicePath.1': '/c',
      'serviceDomain.1': 'Shop.Example.com,*.shop.io',
      'port.1': '8080',
      distribute: 'true',
    });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.service.destinations).toEqual([
      { index: 0, port: 80, paths: ['/a', '/b'], domains: [] },
      { index: 1, port: 8080, paths: ['/c'], domains: ['shop.example.com', '*.shop.io'] },
    ]);
  });

  test('a domain-only destination is valid; a destination with neither is a 409', () => {
    expect(parseServiceParams({ serviceName: 's', serviceDomain: 'x.io', port: '1' }).ok).toBe(true);
    const parsed = parseServiceParams({ serviceName: 's', port: '1' });
    expect(parsed.ok ? 0 : parsed.error.status).toBe(409);
  });
});

describe('PrefixTree', () => {
  test('returns the longest stored prefix, whatever the insertion order', () => {
    const tree = new PrefixTree<string>();
    for (const key of ['/api/v2/users', '/', '/api', '/api/v2', '/apple']) tree.insert(key, key);
    expect(tree.longestPrefixOf('/api/v2/users/1')).toBe('/api/v2/users');
    expect(tree.longestPrefixOf('/api/v2/user')).toBe('/api/v2');
    expect(tree.longestPrefixOf('/apx')).toBe('/');
    expect(tree.longestPrefixOf('/apple-pie')).toBe('/apple');
    expect(tree.longestPrefixOf('')).toBeUndefined();
  });

  test('agrees with a brute-force longest prefix on random keys', () => {
    const alphabet = 'ab/';
    const random = (n: number) => Array.from({ length: n }, () => alphabet[Math.floor(Math.random() * 3)]).join('');
    const keys = Array.from({ length: 200 }, () => `/${random(1 + Math.floor(Math.random() * 6))}`);
    const tree = new PrefixTree<string>();
    for (const key of keys) tree.insert(key, key);
    for (let i = 0; i < 2000; i++) {
      const probe = `/${random(Math.floor(Math.random() * 9))}`;
      const expected = keys.filter((k) => probe.startsWith(k)).sort((x, y) => y.length - x.length)[0];
      expect(tree.longestPrefixOf(probe)).toBe(expected);
    }
  });
});

describe('RouteIndex', () => {
  const index = new RouteIndex(
    snapshotOf(
      { serviceName: 'any', servicePath: '/', port: '1' },
      { serviceName: 'exact', serviceDomain: 'x.io', servicePath: '/only', port: '1' },
      { serviceName: 'wild', serviceDomain: '*.x.io', port: '1' },
    ),
  );
  const match = (host: string, path: string) => index.match(normalizeHost(host), path)?.service.name;

  test('exact domain, then most specific wildcard, then domain-less', () => {
    expect(match('X.io:80', '/only/1')).toBe('exact');
    expect(match('x.io', '/other')).toBe('any');
    expect(match('a.x.io', '/other')).toBe('wild');
    expect(match('a.b.x.io', '/')).toBe('wild');
    expect(match('ax.io', '/')).toBe('any');
  });
});
