import { describe, expect, test } from 'vitest';
import { normalizeHost, PrefixTree, RouteIndex } from '../../src/routes/match.js';
import { parseServiceParams } from '../../src/routes/params.js';
import { streamConflict, streamListeners } from '../../src/routes/listeners.js';
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

  test('checkResolvers is accepted as a boolean, with no effect: addresses are always followed', () => {
    const plain = parseServiceParams({ serviceName: 's', servicePath: '/s', port: '1' });
    const resolved = parseServiceParams({ serviceName: 's', servicePath: '/s', port: '1', checkResolvers: 'true' });
    expect(resolved.ok && plain.ok && resolved.service).toEqual(plain.ok && plain.service);
    expect(parseServiceParams({ serviceName: 's', reqMode: 'tcp', srcPort: '7000', port: '1', checkResolvers: 'false' }).ok).toBe(true);
    const refused = parseServiceParams({ serviceName: 's', servicePath: '/s', port: '1', checkResolvers: 'always' });
    expect(refused.ok ? '' : refused.error.message).toMatch(/checkResolvers/);
  });

  test('a domain-only destination is valid; a destination with neither is a 409', () => {
    expect(parseServiceParams({ serviceName: 's', serviceDomain: 'x.io', port: '1' }).ok).toBe(true);
    const parsed = parseServiceParams({ serviceName: 's', port: '1' });
    expect(parsed.ok ? 0 : parsed.error.status).toBe(409);
  });
});

describe('serviceGroup, balanceGroup and weight', () => {
  const tcp = { reqMode: 'tcp', srcPort: '5432', port: '5432' };
  const refusal = (params: Record<string, string>) => {
    const parsed = parseServiceParams(params);
    return parsed.ok ? undefined : parsed.error;
  };

  test('a tcp destination joins a group with its weight (1 by default) and the group\'s algorithm; indexes give each destination its own', () => {
    const parsed = parseServiceParams({ serviceName: 'db', ...tcp, serviceGroup: 'pg', balanceGroup: 'leastconn', weight: '9', 'srcPort.1': '6000', 'port.1': '6000', 'serviceGroup.1': 'other' });
    expect(parsed.ok && parsed.service.destinations.map((d) => d.group)).toEqual([{ name: 'pg', balance: 'leastconn', weight: 9 }, { name: 'other', weight: 1 }]);
    const alone = parseServiceParams({ serviceName: 'db', ...tcp });
    expect(alone.ok && alone.service.destinations[0]?.group).toBeUndefined();
  });

  test.each([
    ['an HTTP service', { serviceName: 'web', servicePath: '/', port: '80', serviceGroup: 'g' }, 'serviceGroup', 'reqMode=tcp'],
    ['an HTTP service (weight)', { serviceName: 'web', servicePath: '/', port: '80', weight: '2' }, 'weight', 'reqMode=tcp'],
    ['an sni service', { serviceName: 'tls', reqMode: 'sni', srcPort: '8443', port: '443', serviceDomain: 'a.io', balanceGroup: 'source' }, 'balanceGroup', 'reqMode=tcp'],
    ['weight without serviceGroup', { serviceName: 'db', ...tcp, weight: '3' }, 'weight', 'set serviceGroup too'],
    ['an indexed weight without its serviceGroup', { serviceName: 'db', ...tcp, serviceGroup: 'pg', 'srcPort.1': '6000', 'port.1': '6000', 'weight.1': '3' }, 'weight.1', 'set serviceGroup.1 too'],
    ['balanceGroup without serviceGroup', { serviceName: 'db', ...tcp, balanceGroup: 'leastconn' }, 'balanceGroup', 'use balance'],
    ['balance on a service whose every port is grouped', { serviceName: 'db', ...tcp, serviceGroup: 'pg', balance: 'source' }, 'balance', 'balanceGroup'],
    ['a weight of 0', { serviceName: 'db', ...tcp, serviceGroup: 'pg', weight: '0' }, 'weight', 'between 1 and 256'],
    ['a weight above 256', { serviceName: 'db', ...tcp, serviceGroup: 'pg', weight: '257' }, 'weight', 'between 1 and 256'],
    ['a fractional weight', { serviceName: 'db', ...tcp, serviceGroup: 'pg', weight: '1.5' }, 'weight', 'between 1 and 256'],
    ['an unknown balanceGroup', { serviceName: 'db', ...tcp, serviceGroup: 'pg', balanceGroup: 'random' }, 'balanceGroup', 'roundrobin, leastconn'],
    ['a group name with a space', { serviceName: 'db', ...tcp, serviceGroup: 'pg\n  server x 1.2.3.4:1' }, 'serviceGroup', 'group name'],
    ['a group name with a quote', { serviceName: 'db', ...tcp, serviceGroup: "pg'" }, 'serviceGroup', 'group name'],
  ])('refused with 400 naming the parameter: %s', (_, params, parameter, hint) => {
    const error = refusal(params);
    expect(error?.status).toBe(400);
    expect(error?.parameter).toBe(parameter);
    expect(error?.message).toContain(parameter);
    expect(error?.message).toContain(hint);
  });

  test('port sharing: one group with one balanceGroup shares; anything else on the port is named', () => {
    const member = (name: string, extra: Record<string, string>) => ({ serviceName: name, ...tcp, ...extra });
    const conflict = (...services: Record<string, string>[]) => streamConflict(snapshotOf(...services), [80, 443]);
    expect(conflict(member('a', { serviceGroup: 'pg', weight: '3' }), member('b', { serviceGroup: 'pg', port: '6000' }))).toBeUndefined();
    expect(conflict(member('a', { serviceGroup: 'pg', balanceGroup: 'leastconn' }), member('b', { serviceGroup: 'pg', balanceGroup: 'leastconn' }))).toBeUndefined();
    expect(conflict(member('a', { serviceGroup: 'pg', balanceGroup: 'leastconn' }), member('b', { serviceGroup: 'pg' }))).toMatch(/^balanceGroup of serviceGroup pg on srcPort 5432: b gives none .* but a gives leastconn/);
    expect(conflict(member('a', { serviceGroup: 'pg' }), member('b', { serviceGroup: 'other' }))).toMatch(/serviceGroup pg \(a\); serviceGroup other of b needs another srcPort/);
    expect(conflict(member('a', {}), member('b', { serviceGroup: 'pg' }))).toMatch(/used by tcp service a, which is in no serviceGroup/);
    expect(conflict(member('a', { serviceGroup: 'pg' }), member('b', {}))).toMatch(/b must join it with serviceGroup=pg/);
    expect(conflict(member('a', {}), member('b', {}))).toMatch(/already used by tcp service a/);
    expect(conflict(member('a', { serviceGroup: 'pg' }), { serviceName: 'tls', reqMode: 'sni', srcPort: '5432', port: '443', serviceDomain: 'a.io' })).toMatch(/already used by tcp service a/);
    // The same group on two ports is two independent pools.
    expect(conflict(member('a', { serviceGroup: 'pg', balanceGroup: 'source' }), member('b', { serviceGroup: 'pg', srcPort: '6000' }))).toBeUndefined();
  });

  test('a group\'s listener carries every member, by name, and the longest timeoutClient', () => {
    const listeners = streamListeners(
      snapshotOf(
        { serviceName: 'zeta', ...tcp, serviceGroup: 'pg', timeoutClient: '30' },
        { serviceName: 'alpha', ...tcp, port: '6000', serviceGroup: 'pg', weight: '3' },
      ),
      50,
    );
    const listener = listeners.get(5432);
    expect(listener?.tcp?.group).toBe('pg');
    expect(listener?.tcp?.members.map((m) => `${m.service.name}:${m.destination.port}:${m.destination.group?.weight}`)).toEqual(['alpha:6000:3', 'zeta:5432:1']);
    expect(listener?.timeoutClientSeconds).toBe(50);
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
