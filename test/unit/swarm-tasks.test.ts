/**
 * Which task addresses the proxy uses: the pure filtering behind SwarmTaskAddresses, fed with
 * listings shaped like the Engine's GET /tasks answer (the class itself is tested against a real
 * Swarm in test/e2e/swarm-tasks.test.ts).
 */
import { describe, expect, test } from 'vitest';
import { parseIPv4Cidr, reachableTaskAddresses } from '../../src/sources/swarm/tasks.js';
import type { SwarmNetworkAttachment, SwarmTask } from '../../src/sources/swarm/tasks.js';

const front = { ID: 'net-front', Spec: { Name: 'front' } };
const back = { ID: 'net-back', Spec: { Name: 'back' } };
const ingress = { ID: 'net-ingress', Spec: { Name: 'ingress', Ingress: true } };
/** An ingress network under another name: only its Ingress flag tells. */
const renamedIngress = { ID: 'net-ingress2', Spec: { Name: 'mesh', Ingress: true } };

const on = (network: SwarmNetworkAttachment['Network'], ...addresses: string[]): SwarmNetworkAttachment => ({ Network: network, Addresses: addresses });
const task = (service: string, attachments: SwarmNetworkAttachment[], state = 'running', desired = 'running'): SwarmTask => ({
  ServiceID: service,
  DesiredState: desired,
  Status: { State: state },
  NetworksAttachments: attachments,
});

const names = new Map([
  ['id-web', 'web'],
  ['id-api', 'api'],
  ['id-idle', 'idle'],
]);

describe('reachableTaskAddresses', () => {
  test('only attachments on a network holding one of the proxy own addresses count', () => {
    const tasks = [
      task('id-web', [on(front, '10.0.1.7/24'), on(ingress, '10.0.0.7/24')]),
      task('id-web', [on(front, '10.0.1.5/24')]),
      task('id-api', [on(back, '10.0.2.9/24')]),
    ];
    const found = reachableTaskAddresses(tasks, names, ['192.168.1.20', '10.0.1.2']);
    expect(found.get('web')).toEqual(['10.0.1.5', '10.0.1.7']);
    // The proxy is not on "back": api's task is unreachable, so api has no address (not a fallback).
    expect(found.get('api')).toEqual([]);
  });

  test('when the proxy has no address on any task network, every non-ingress attachment counts', () => {
    const tasks = [
      task('id-web', [on(front, '10.0.1.7/24'), on(ingress, '10.0.0.7/24')]),
      task('id-api', [on(back, '10.0.2.9/24'), on(renamedIngress, '10.0.9.9/24')]),
    ];
    const found = reachableTaskAddresses(tasks, names, ['192.168.1.20', '172.17.0.1']);
    expect(found.get('web')).toEqual(['10.0.1.7']);
    expect(found.get('api')).toEqual(['10.0.2.9']);
  });

  test('the ingress network never counts, even when the proxy has an address on it', () => {
    const tasks = [task('id-web', [on(ingress, '10.0.0.7/24'), on(front, '10.0.1.7/24')]), task('id-api', [on(ingress, '10.0.0.8/24')])];
    // The proxy's own ingress address does not make ingress reachable, nor switch off the fallback.
    const found = reachableTaskAddresses(tasks, names, ['10.0.0.2']);
    expect(found.get('web')).toEqual(['10.0.1.7']);
    expect(found.get('api')).toEqual([]);
    const byName = reachableTaskAddresses([task('id-api', [on({ ID: 'x', Spec: { Name: 'ingress' } }, '10.0.0.8/24')])], names, []);
    expect(byName.get('api')).toEqual([]);
  });

  test('a task on two reachable networks is used once; the subnet decides, not the exact address', () => {
    const tasks = [task('id-web', [on(back, '10.0.2.3/24'), on(front, '10.0.1.3/24')])];
    const found = reachableTaskAddresses(tasks, names, ['10.0.2.200', '10.0.1.200']);
    expect(found.get('web')).toEqual(['10.0.1.3']);
    // Same subnet prefix length matters: 10.0.1.3/24 does not hold 10.0.3.1.
    expect(reachableTaskAddresses(tasks, names, ['10.0.3.1']).get('web')).toEqual(['10.0.1.3']);
    expect(reachableTaskAddresses(tasks, names, ['10.0.2.1']).get('web')).toEqual(['10.0.2.3']);
  });

  test('only running tasks that Swarm wants running count; every known service has an entry', () => {
    const tasks = [
      task('id-web', [on(front, '10.0.1.7/24')]),
      task('id-web', [on(front, '10.0.1.8/24')], 'starting'),
      task('id-web', [on(front, '10.0.1.9/24')], 'running', 'shutdown'),
      task('id-api', [on(front, '10.0.1.10/24')], 'failed'),
      task('id-gone', [on(front, '10.0.1.11/24')]),
    ];
    const found = reachableTaskAddresses(tasks, names, []);
    expect(found.get('web')).toEqual(['10.0.1.7']);
    expect(found.get('api')).toEqual([]);
    expect(found.get('idle')).toEqual([]);
    // A task whose service the Engine no longer lists is skipped: its name is unknown.
    expect([...found.keys()].sort()).toEqual(['api', 'idle', 'web']);
  });

  test('IPv6 and malformed addresses are ignored; attachments without addresses are harmless', () => {
    const tasks = [
      task('id-web', [on(front, 'fd00::5/64', '10.0.1.5/24'), { Network: back }]),
      task('id-api', [on(front, 'not-an-address', '10.0.1.300/24')]),
      { ServiceID: 'id-api' },
    ];
    const found = reachableTaskAddresses(tasks, names, ['10.0.1.2']);
    expect(found.get('web')).toEqual(['10.0.1.5']);
    expect(found.get('api')).toEqual([]);
  });

  test('addresses are sorted like the other address sources (string order)', () => {
    const tasks = ['10.0.1.20/24', '10.0.1.3/24', '10.0.1.100/24'].map((a) => task('id-web', [on(front, a)]));
    expect(reachableTaskAddresses(tasks, names, ['10.0.1.2']).get('web')).toEqual(['10.0.1.100', '10.0.1.20', '10.0.1.3']);
  });
});

describe('parseIPv4Cidr', () => {
  test('reads address and mask; rejects what is not an IPv4 CIDR', () => {
    expect(parseIPv4Cidr('10.0.1.5/24')).toEqual({ address: '10.0.1.5', ip: 0x0a000105, mask: 0xffffff00 });
    expect(parseIPv4Cidr('10.0.1.5/32')?.mask).toBe(0xffffffff);
    expect(parseIPv4Cidr('10.0.1.5/0')?.mask).toBe(0);
    expect(parseIPv4Cidr('10.0.1.5')?.mask).toBe(0xffffffff);
    for (const bad of ['10.0.1.5/33', '10.0.1/24', 'fd00::1/64', '10.0.1.5/24/1', '10.0.1.256/24', '10.0.1.5/', '']) expect(parseIPv4Cidr(bad)).toBeUndefined();
  });

  test('a /0 network holds everything, a /32 only itself', () => {
    const tasks = [task('id-web', [on(front, '10.0.1.5/0')]), task('id-api', [on(back, '10.0.2.5/32')])];
    const found = reachableTaskAddresses(tasks, names, ['192.168.7.7']);
    // The /0 attachment is reachable, so the fallback is off and api's /32 (not the proxy's) drops.
    expect(found.get('web')).toEqual(['10.0.1.5']);
    expect(found.get('api')).toEqual([]);
    expect(reachableTaskAddresses(tasks, names, ['10.0.2.5', '10.9.9.9']).get('api')).toEqual(['10.0.2.5']);
  });
});
