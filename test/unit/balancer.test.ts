import { describe, expect, test } from 'vitest';
import { Balancer } from '../../src/planes/builtin/balancer.js';

const NONE = new Set<string>();
const weights = new Map([['a', 3], ['b', 1]]);
const weightOf = (address: string) => weights.get(address) ?? 1;

describe('weighted balancing (serviceGroup members)', () => {
  test('round-robin gives each replica its weight\'s share of every cycle, interleaved rather than in bursts', () => {
    const balancer = new Balancer('roundrobin', false, 0);
    const picks = Array.from({ length: 8 }, () => balancer.pick(['a', 'b'], '', undefined, NONE, weightOf)?.address);
    expect(picks).toEqual(['a', 'a', 'b', 'a', 'a', 'a', 'b', 'a']);
  });

  test('least connections compares connections per unit of weight', () => {
    const balancer = new Balancer('leastconn', false, 0);
    const open = Array.from({ length: 8 }, () => {
      const address = balancer.pick(['a', 'b'], '', undefined, NONE, weightOf)?.address as string;
      balancer.started(address);
      return address;
    });
    // 8 connections held open: 6 on a (2 per unit of weight), 2 on b (2 per unit).
    expect(open.filter((address) => address === 'a')).toHaveLength(6);
  });

  test('source hashing keeps a client on one replica and gives each a share of clients by weight', () => {
    const balancer = new Balancer('source', false, 0);
    const clients = Array.from({ length: 400 }, (_, i) => `10.1.${Math.floor(i / 200)}.${i % 200}`);
    const chosen = clients.map((client) => balancer.pick(['a', 'b'], client, undefined, NONE, weightOf)?.address);
    expect(clients.map((client) => balancer.pick(['a', 'b'], client, undefined, NONE, weightOf)?.address)).toEqual(chosen);
    const share = chosen.filter((address) => address === 'a').length / clients.length;
    expect(share).toBeGreaterThan(0.65);
    expect(share).toBeLessThan(0.85);
  });
});
