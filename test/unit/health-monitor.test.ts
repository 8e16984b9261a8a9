/**
 * The active health monitor against real loopback servers (127.0.0.1-3 are all loopback on Linux):
 * rise/fall, HTTP and TCP checks, passive ejection, forgetting, stop(). Nothing is mocked and no
 * assertion follows a fixed sleep: "nothing happens" is shown against something that does happen
 * meanwhile (another server's probe count).
 */
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { HealthMonitor } from '../../src/health/monitor.js';
import type { HealthCheck } from '../../src/health/monitor.js';
import { eventually } from '../support/http-client.js';

type Mode = 'ok' | 'fail' | 'hang';

interface Backend {
  readonly address: string;
  readonly port: number;
  mode: Mode;
  /** Requests on the health path, and what they carried. */
  readonly requests: { path: string; headers: http.IncomingHttpHeaders }[];
  readonly closedSockets: () => number;
  /** Called as each request arrives, before it is answered. */
  onRequest: () => void;
  /** Answers the requests held in 'hang' mode with 200. */
  release(): void;
  close(): Promise<void>;
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** An HTTP server on `address` (port 0: any) answering 200, 500 or never, as `mode` says. */
async function backend(address: string, port = 0): Promise<Backend> {
  const sockets = new Set<net.Socket>();
  let closed = 0;
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    state.requests.push({ path: req.url ?? '', headers: req.headers });
    state.onRequest();
    if (state.mode === 'hang') return void held.push(res);
    res.statusCode = state.mode === 'ok' ? 200 : 500;
    res.end(state.mode);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      closed += 1;
    });
  });
  await new Promise<void>((resolve) => server.listen(port, address, resolve));
  const state: Backend = {
    address,
    port: (server.address() as net.AddressInfo).port,
    mode: 'ok',
    requests: [],
    closedSockets: () => closed,
    onRequest: () => undefined,
    release: () => {
      for (const res of held.splice(0)) res.end('ok');
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  cleanup.push(() => state.close());
  return state;
}

function monitor(onChange: () => void = () => undefined): HealthMonitor {
  const created = new HealthMonitor({ onChange });
  cleanup.push(() => created.stop());
  return created;
}

const http50 = (overrides: Partial<HealthCheck> = {}): HealthCheck => ({ kind: 'http', path: '/health', intervalMs: 50, timeoutMs: 200, rise: 2, fall: 2, ...overrides });

/** Polls a synchronous condition until it holds or `timeoutMs` passes; returns whether it held. */
async function until(condition: () => boolean, timeoutMs = 8000): Promise<boolean> {
  return (await eventually(async () => condition(), (held) => held, timeoutMs)) === true;
}

describe('HealthMonitor', () => {
  test('a key\'s first addresses need one passing probe, an address that joins later rise; answers are stable and in candidate order', async () => {
    const a = await backend('127.0.0.2');
    const b = await backend('127.0.0.3', a.port);
    const health = monitor();
    const check = http50({ rise: 3, intervalMs: 300 });
    // The key starts with b (a proxy start, or a new service): one passing probe admits it.
    expect(health.healthy('web#0', check, b.port, [b.address])).toEqual([]);
    expect(await until(() => health.healthy('web#0', check, b.port, [b.address]).length === 1)).toBe(true);
    expect(b.requests.length).toBeLessThan(3);
    // a joins later (a new task): as probe n arrives, at most n - 1 succeeded; up to the third, a must not be healthy.
    const early: number[] = [];
    a.onRequest = () => {
      if (a.requests.length <= 3 && health.healthy('web#0', check, a.port, [b.address, a.address]).includes(a.address)) early.push(a.requests.length);
    };
    expect(health.healthy('web#0', check, a.port, [b.address, a.address])).toEqual([b.address]);
    expect(await until(() => health.healthy('web#0', check, a.port, [b.address, a.address]).length === 2)).toBe(true);
    expect(early).toEqual([]);
    expect(a.requests.length).toBeGreaterThanOrEqual(3);
    const first = health.healthy('web#0', check, a.port, [b.address, a.address]);
    expect(first).toEqual([b.address, a.address]);
    expect(health.healthy('web#0', check, a.port, [b.address, a.address])).toBe(first); // new array, same content: same answer object
    expect(health.healthy('web#0', check, a.port, [a.address, b.address])).toEqual([a.address, b.address]);

    const probe = a.requests[0];
    expect(probe?.path).toBe('/health');
    expect(probe?.headers.host).toBe('127.0.0.2');
    expect(probe?.headers.connection).toBe('close');
    expect(probe?.headers['user-agent']).toBe('flow-proxy-health');

    // Another path is another check: its results start from scratch.
    expect(health.healthy('web#0', { ...check, path: '/ready' }, a.port, [a.address])).toEqual([]);
    expect(await until(() => a.requests.some((request) => request.path === '/ready'))).toBe(true);
  });

  test('an HTTP error or no answer makes an address unhealthy; it comes back after rise successes', async () => {
    const a = await backend('127.0.0.2');
    a.mode = 'fail';
    const health = monitor();
    const check = http50({ timeoutMs: 100 });
    const healthy = () => health.healthy('web#0', check, a.port, [a.address]);
    healthy();
    expect(await until(() => a.requests.length >= 6)).toBe(true);
    expect(healthy()).toEqual([]); // six 500s: never healthy

    a.mode = 'ok';
    expect(await until(() => healthy().length === 1)).toBe(true);

    a.mode = 'hang';
    const hungAt = a.requests.length;
    expect(await until(() => healthy().length === 0)).toBe(true);
    expect(a.requests.length - hungAt).toBeGreaterThanOrEqual(2); // fall = 2 timed out probes
    expect(a.closedSockets()).toBeGreaterThanOrEqual(hungAt + 1); // a timed-out probe closes its connection

    a.mode = 'ok';
    expect(await until(() => healthy().length === 1)).toBe(true);
  });

  test('tcp: an open port is healthy, a closed one is not', async () => {
    let connections = 0;
    const server = net.createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.2', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const port = (server.address() as net.AddressInfo).port;
    const health = monitor();
    const check: HealthCheck = { kind: 'tcp', path: '/', intervalMs: 50, timeoutMs: 200, rise: 2, fall: 2 };
    // Nothing listens on 127.0.0.3 at that port: refused.
    const healthy = () => health.healthy('db#0', check, port, ['127.0.0.3', '127.0.0.2']);
    expect(await until(() => healthy().length === 1)).toBe(true);
    expect(await until(() => connections >= 6)).toBe(true);
    expect(healthy()).toEqual(['127.0.0.2']);
  });

  test('reported failures eject an address at once; probes bring it back', async () => {
    const a = await backend('127.0.0.2');
    const health = monitor();
    const check = http50({ intervalMs: 60_000, rise: 1, fall: 2 }); // one probe a minute: probes cannot explain what follows
    const healthy = () => health.healthy('web#0', check, a.port, [a.address]);
    expect(await until(() => healthy().length === 1)).toBe(true);
    expect(a.requests.length).toBe(1);

    health.report('web#0', a.address, false);
    health.report('web#0', a.address, true); // a success resets the count
    health.report('web#0', a.address, false);
    expect(healthy()).toEqual([a.address]);
    health.report('web#0', a.address, false);
    expect(healthy()).toEqual([]);
    health.report('other#0', a.address, false); // unknown keys and addresses are ignored
    health.report('web#0', '127.0.0.9', false);

    // Readmitted by a probe (run at once after the ejection), not by waiting a minute.
    expect(await until(() => healthy().length === 1)).toBe(true);
    expect(a.requests.length).toBe(2);
  });

  test('a probe in flight when failures are reported does not readmit the address', async () => {
    const a = await backend('127.0.0.2');
    const health = monitor();
    const check = http50({ intervalMs: 100, timeoutMs: 5000, rise: 1, fall: 1 });
    const healthy = () => health.healthy('web#0', check, a.port, [a.address]);
    expect(await until(() => healthy().length === 1)).toBe(true);
    a.mode = 'hang';
    const count = a.requests.length;
    expect(await until(() => a.requests.length > count)).toBe(true); // a probe is held by the server
    health.report('web#0', a.address, false);
    expect(healthy()).toEqual([]);
    // Its 200 predates the failure: the next probe (at once) must find the address still out.
    const seen: (readonly string[])[] = [];
    a.mode = 'ok';
    a.onRequest = () => seen.push(healthy());
    a.release();
    expect(await until(() => healthy().length === 1)).toBe(true);
    expect(seen[0]).toEqual([]);
  });

  test('onChange follows changes; addresses no longer passed in stop being probed', async () => {
    const a = await backend('127.0.0.2');
    const b = await backend('127.0.0.3', a.port);
    let changes = 0;
    const health = monitor(() => (changes += 1));
    const check = http50({ rise: 1, fall: 1 });
    health.healthy('web#0', check, a.port, [a.address, b.address]);
    expect(await until(() => changes >= 1 && health.healthy('web#0', check, a.port, [a.address, b.address]).length === 2)).toBe(true);

    // b leaves the candidates: after a few intervals it is no longer probed, while a still is.
    health.healthy('web#0', check, a.port, [a.address]);
    let aCountAtLastB = a.requests.length;
    let bCount = b.requests.length;
    const forgotten = await until(() => {
      if (b.requests.length !== bCount) [bCount, aCountAtLastB] = [b.requests.length, a.requests.length];
      return a.requests.length - aCountAtLastB >= 8;
    });
    expect(forgotten).toBe(true);

    const before = changes;
    a.mode = 'fail';
    expect(await until(() => changes > before)).toBe(true);
    expect(health.healthy('web#0', check, a.port, [a.address])).toEqual([]);
  });

  test('stop() ends probes in flight and timers: no request arrives afterwards', async () => {
    const a = await backend('127.0.0.2');
    const hung = await backend('127.0.0.3');
    hung.mode = 'hang';
    const health = new HealthMonitor({ onChange: () => undefined });
    const check = http50({ intervalMs: 20, rise: 1 });
    health.healthy('web#0', check, a.port, [a.address]);
    health.healthy('slow#0', http50({ timeoutMs: 60_000 }), hung.port, [hung.address]);
    expect(await until(() => health.healthy('web#0', check, a.port, [a.address]).length === 1 && hung.requests.length === 1)).toBe(true);
    health.stop();
    expect(await until(() => hung.closedSockets() === 1)).toBe(true); // the hanging probe was aborted, not left to its minute
    const stoppedAt = a.requests.length; // read once a probe cut by stop() had its chance to arrive
    expect(health.healthy('web#0', check, a.port, [a.address])).toEqual([a.address]); // after stop: no opinion

    // Meanwhile another monitor on the same interval probes ten times: the stopped one never again.
    const witness = monitor();
    const b = await backend('127.0.0.3', a.port);
    witness.healthy('web#0', check, b.port, [b.address]);
    expect(await until(() => b.requests.length >= 10)).toBe(true);
    expect(a.requests.length).toBe(stoppedAt);
  });
});
