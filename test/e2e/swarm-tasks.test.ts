/**
 * SwarmTaskAddresses against a real single-node Swarm: the addresses of a service's running tasks
 * follow scaling within about a second of a task running, agree with what `docker inspect` says of
 * the tasks, and give way to undefined (DNS fallback) when the service goes or the Engine API
 * cannot be reached.
 *
 * This process runs on the host, not in an overlay network, so the "no own address on any task
 * network" rule applies: every non-ingress attachment counts. (The rule itself is unit-tested in
 * test/unit/swarm-tasks.test.ts.) Names are prefixed with this process's id, so other test files
 * on the same Swarm cannot collide with them; those may change other services at any time, so
 * nothing here assumes the Swarm is otherwise quiet.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger } from '../../src/log.js';
import { dockerClient } from '../../src/sources/swarm/watcher.js';
import { SwarmTaskAddresses } from '../../src/sources/swarm/tasks.js';
import type { TaskAddresses } from '../../src/sources/swarm/tasks.js';
import { docker, emptyImage, ensureSwarm, nodeScriptImage, runningTasks, waitFor } from '../support/swarm.js';

const prefix = `fp-tasks-${process.pid}`;
const network = `${prefix}-net`;
const web = `${prefix}-web`;
/** A service that exists with no task at all: tasksOf answers [] for it while the Engine answers. */
const sentinel = `${prefix}-sentinel`;
const engineSocket = '/var/run/docker.sock';
const log = createLogger('error');
const services: string[] = [];
const sources: SwarmTaskAddresses[] = [];
let source: SwarmTaskAddresses;
let image: string;
let scratch: string;
/** What tasksOf(web) answered after each onChange call, and the whole snapshot then. */
const changes: { at: number; web: readonly string[] | undefined; snapshot: TaskAddresses | undefined }[] = [];

const server = `require('http').createServer((q, s) => s.end(require('os').hostname())).listen(80);`;

async function httpImage(): Promise<string> {
  const name = 'flow-proxy-test/tasks-http:1';
  if ((await docker('image', 'ls', '-q', name)) !== '') return name;
  return nodeScriptImage(name, server);
}

interface InspectedAttachment {
  readonly Network: { readonly Spec: { readonly Name: string } };
  readonly Addresses?: readonly string[];
}

/** The addresses on `network` of the service's running tasks, as `docker inspect` reports them. */
async function inspectedAddresses(service: string): Promise<string[]> {
  const addresses: string[] = [];
  for (const task of await runningTasks(service)) {
    const attachments = JSON.parse(await docker('inspect', '--type', 'task', '--format', '{{json .NetworksAttachments}}', task.id)) as InspectedAttachment[] | null;
    for (const attachment of attachments ?? []) {
      if (attachment.Network.Spec.Name === network) addresses.push(...(attachment.Addresses ?? []).map((cidr) => cidr.split('/')[0] as string));
    }
  }
  return addresses.sort();
}

/** When the newest of the service's running tasks became running, by the Engine's clock (this machine's). */
async function lastRunningAt(service: string): Promise<number> {
  let newest = 0;
  for (const task of await runningTasks(service)) {
    const stamp = JSON.parse(await docker('inspect', '--type', 'task', '--format', '{{json .Status.Timestamp}}', task.id)) as string;
    newest = Math.max(newest, Date.parse(stamp));
  }
  return newest;
}

/** Waits until tasksOf(service) has `count` addresses and they are exactly those docker inspect reports. */
async function agreeWithEngine(service: string, count: number, timeoutMs: number): Promise<readonly string[]> {
  const both = await waitFor(
    `tasksOf(${service}) to hold the ${count} addresses docker inspect reports`,
    async () => ({ ours: source.tasksOf(service), engine: await inspectedAddresses(service) }),
    (v) => v.ours?.length === count && JSON.stringify(v.ours) === JSON.stringify(v.engine),
    timeoutMs,
  );
  return both.engine;
}

function firstChangeTo(count: number, since: number): number | undefined {
  return changes.find((c) => c.at >= since && c.web?.length === count)?.at;
}

/** A unix socket that forwards to the Engine's while open: the Engine API going away and back, for real. */
async function engineForwarder(socketPath: string): Promise<{ close(): Promise<void> }> {
  const connections = new Set<net.Socket>();
  const forwarder = net.createServer((client) => {
    const engine = net.connect(engineSocket);
    connections.add(client).add(engine);
    client.pipe(engine).pipe(client);
    const drop = () => {
      client.destroy();
      engine.destroy();
      connections.delete(client);
      connections.delete(engine);
    };
    client.on('error', drop).on('close', drop);
    engine.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve, reject) => forwarder.once('error', reject).listen(socketPath, resolve));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        forwarder.close(() => resolve());
        for (const connection of connections) connection.destroy();
      }),
  };
}

beforeAll(async () => {
  await ensureSwarm();
  scratch = await mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
  image = await httpImage();
  await docker('network', 'create', '--driver', 'overlay', '--attachable', network);
  await docker('service', 'create', '--detach', '--no-resolve-image', '--name', sentinel, '--replicas', '0', await emptyImage(), '/nothing');
  services.push(sentinel);
  source = new SwarmTaskAddresses(dockerClient(`unix://${engineSocket}`), log, { dockerHost: engineSocket });
  sources.push(source);
  source.onChange(() => changes.push({ at: Date.now(), web: source.tasksOf(web), snapshot: source.snapshot() }));
  await source.start();
}, 600_000);

afterAll(async () => {
  for (const s of sources) s.stop();
  if (services.length > 0) await docker('service', 'rm', ...services).catch(() => '');
  // The network can only go once the tasks' containers are gone.
  await waitFor(`network ${network} to be removed`, () => docker('network', 'rm', network).then(() => true, () => false), (gone) => gone, 30_000).catch(() => undefined);
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

test('the running tasks of a service are followed through scaling and removal', async () => {
  expect(source.tasksOf(web)).toBeUndefined(); // not known to the Engine yet
  expect(source.tasksOf(sentinel)).toEqual([]); // known, no task

  await docker('service', 'create', '--detach', '--no-resolve-image', '--name', web, '--network', network, '--replicas', '2', image);
  services.push(web);
  const two = await agreeWithEngine(web, 2, 90_000);
  expect(source.tasksOf(web)).toEqual(two);

  await docker('service', 'scale', '--detach', `${web}=3`);
  const scaledUp = Date.now();
  const three = await agreeWithEngine(web, 3, 90_000);
  expect(three).toEqual(expect.arrayContaining([...two]));
  const runningAt = await lastRunningAt(web);
  const upAt = firstChangeTo(3, scaledUp);
  expect(upAt).toBeDefined();
  const afterRunning = (upAt as number) - runningAt;
  console.log(`scale 2->3: tasksOf changed ${(upAt as number) - scaledUp} ms after \`docker service scale\` returned, ${afterRunning} ms after the new task was running`);
  expect(afterRunning).toBeLessThanOrEqual(2000);

  await docker('service', 'scale', '--detach', `${web}=1`);
  const scaledDown = Date.now();
  const one = await agreeWithEngine(web, 1, 60_000);
  expect(three).toEqual(expect.arrayContaining([...one]));
  const downAt = firstChangeTo(1, scaledDown);
  expect(downAt).toBeDefined();
  console.log(`scale 3->1: tasksOf changed ${(downAt as number) - scaledDown} ms after \`docker service scale\` returned`);
  expect((downAt as number) - scaledDown).toBeLessThanOrEqual(2000);

  await docker('service', 'rm', web);
  services.splice(services.indexOf(web), 1);
  const removedAt = Date.now();
  await waitFor(`tasksOf(${web}) to be undefined once the service is removed`, async () => source.tasksOf(web), (v) => v === undefined, 10_000);
  console.log(`service rm: tasksOf undefined ${Date.now() - removedAt} ms after \`docker service rm\` returned`);
  expect(changes.some((c) => c.at >= removedAt && c.web === undefined)).toBe(true);

  expect(changes.filter((c) => c.web?.length === 2).length).toBeGreaterThan(0);
  console.log(`one listing: ${JSON.stringify(source.lastListing)}; ${source.listings} listings, ${changes.length} onChange calls so far`);
});

test('onChange is called only after listings that changed something', async () => {
  // Other test files may change the Swarm meanwhile, so the check is on what each call saw:
  // every call's snapshot differs from the previous call's. Listings without a change (the 1 s
  // polls) are many more than the calls.
  const listings = source.listings;
  await waitFor('three more listings (polls)', async () => source.listings, (n) => n >= listings + 3, 15_000);
  expect(changes.length).toBeGreaterThan(1);
  for (let i = 1; i < changes.length; i++) {
    const before = changes[i - 1]?.snapshot;
    const after = changes[i]?.snapshot;
    expect(before === undefined || after === undefined || JSON.stringify([...before]) !== JSON.stringify([...after])).toBe(true);
  }
  expect(source.listings).toBeGreaterThan(changes.length);
});

test('a burst of Engine events is coalesced into few listings', async () => {
  const engine = dockerClient(`unix://${engineSocket}`);
  // Its own source, with a debounce long enough that the check has a margin for the noise of
  // other test files on this Swarm; the default source is checked for the same bound below.
  const debounceMs = 250;
  const coalescing = new SwarmTaskAddresses(engine, log, { debounceMs });
  sources.push(coalescing);
  await coalescing.start();
  const empty = await emptyImage();
  const events: number[] = [];
  const stream = (await engine.getEvents({ filters: { type: ['service'] } })) as NodeJS.ReadableStream;
  stream.on('data', (chunk: Buffer) => events.push(...chunk.toString().split('\n').filter((l) => l.includes(`${prefix}-burst`)).map(() => Date.now())));
  try {
    const before = { coalescing: coalescing.listings, source: source.listings };
    // Service creations and removals through the API: 100 events within a few hundred ms.
    const burst = Array.from({ length: 50 }, (_, i) => `${prefix}-burst-${i}`);
    services.push(...burst);
    const created = await Promise.all(burst.map((Name) => engine.createService({ Name, TaskTemplate: { ContainerSpec: { Image: empty } }, Mode: { Replicated: { Replicas: 0 } } })));
    await Promise.all(created.map((service) => service.remove()));
    services.splice(services.indexOf(burst[0] as string), burst.length);
    await waitFor('the burst events to arrive', async () => events.length, (n) => n >= 2 * burst.length, 10_000);
    const lastEvent = Math.max(...events);
    // Settled: a listing started after the last event, so it saw the whole burst.
    const settled = (s: SwarmTaskAddresses) => waitFor('a listing that started after the burst', async () => s.lastListing, (l) => l !== undefined && l.at - l.durationMs > lastEvent, 10_000);
    await Promise.all([settled(coalescing), settled(source)]);
    const listings = coalescing.listings - before.coalescing;
    const listingsDefault = source.listings - before.source;
    const spread = lastEvent - Math.min(...events);
    console.log(`burst: ${events.length} events over ${spread} ms -> ${listings} listings (debounce ${debounceMs} ms), ${listingsDefault} listings (default 75 ms)`);
    // One listing per debounce window, plus one in flight when the burst began and one for noise.
    expect(listings).toBeLessThanOrEqual(Math.floor(spread / debounceMs) + 3);
    expect(listingsDefault).toBeLessThanOrEqual(Math.floor(spread / 75) + 3);
    expect(coalescing.tasksOf(`${prefix}-burst-0`)).toBeUndefined();
    expect(source.tasksOf(`${prefix}-burst-0`)).toBeUndefined();
  } finally {
    (stream as { destroy?: () => void }).destroy?.();
    coalescing.stop();
  }
});

test('unreachable Engine: start rejects, tasksOf answers undefined, and listing resumes in the background', async () => {
  const socketPath = path.join(scratch, 'engine.sock');
  const far = new SwarmTaskAddresses(dockerClient(`unix://${socketPath}`), log, { dockerHost: socketPath });
  sources.push(far);
  let calls = 0;
  far.onChange(() => calls++);
  await expect(far.start()).rejects.toThrow(/cannot list Swarm tasks through the Engine API at .*engine\.sock/);
  expect(far.tasksOf(sentinel)).toBeUndefined();

  const forwarder = await engineForwarder(socketPath);
  await waitFor('tasksOf to answer once the Engine API is reachable', async () => far.tasksOf(sentinel), (v) => v !== undefined && v.length === 0, 15_000);
  expect(calls).toBeGreaterThan(0);

  const callsBefore = calls;
  await forwarder.close();
  await rm(socketPath, { force: true });
  const closedAt = Date.now();
  // The last listing stays in use for a while (a dockerd restart does not empty every backend)...
  expect(far.tasksOf(sentinel)).toEqual([]);
  // ...then tasksOf gives way to DNS, and listeners hear about it.
  await waitFor('tasksOf to answer undefined once listings fail', async () => far.tasksOf(sentinel), (v) => v === undefined, 15_000);
  const after = Date.now() - closedAt;
  console.log(`Engine API gone: tasksOf undefined after ${after} ms`);
  expect(after).toBeGreaterThanOrEqual(2500);
  await waitFor('listeners to hear that task addresses are unavailable', async () => calls, (n) => n > callsBefore, 5000);
  far.stop();
});

/** Serves HTTP at once, but reports ready (a file its Docker HEALTHCHECK looks for) only after READY_AFTER_MS. */
const slowStarter = `const fs = require('fs');
require('http').createServer((q, s) => s.end('up')).listen(80);
setTimeout(() => fs.writeFileSync('/tmp/ready', ''), Number(process.env.READY_AFTER_MS));`;

test('a task whose Docker HEALTHCHECK has not passed yet is not followed; it is once the check passes', async () => {
  const name = `${prefix}-healthcheck`;
  const starter = (await docker('image', 'ls', '-q', 'flow-proxy-test/tasks-slow-start:1')) !== '' ? 'flow-proxy-test/tasks-slow-start:1' : await nodeScriptImage('flow-proxy-test/tasks-slow-start:1', slowStarter);
  // The CLI only writes shell health checks, and the image has no shell: the exec form goes through the API.
  const engine = dockerClient(`unix://${engineSocket}`);
  await engine.createService({
    Name: name,
    TaskTemplate: {
      ContainerSpec: {
        Image: starter,
        Env: ['READY_AFTER_MS=6000'],
        HealthCheck: { Test: ['CMD', '/usr/local/bin/node', '-e', "process.exitCode = require('fs').existsSync('/tmp/ready') ? 0 : 1"], Interval: 500_000_000, Timeout: 2_000_000_000, Retries: 1000 },
      },
      Networks: [{ Target: network }],
    },
    Mode: { Replicated: { Replicas: 1 } },
  });
  services.push(name);
  // Swarm keeps the task in "starting" while its check fails; the source knows the service but follows no address.
  await waitFor(`${name}'s task to be starting`, () => docker('service', 'ps', '--format', '{{.CurrentState}}', name), (state) => state.startsWith('Starting'), 60_000);
  // A source started now lists the tasks after the task was seen starting: it knows the service, follows no address.
  const fresh = new SwarmTaskAddresses(dockerClient(`unix://${engineSocket}`), log, { dockerHost: engineSocket });
  sources.push(fresh);
  await fresh.start();
  expect(fresh.tasksOf(name)).toEqual([]);
  expect(await docker('service', 'ps', '--format', '{{.CurrentState}}', name)).toMatch(/^Starting/);
  fresh.stop();
  // Once the check passes, Swarm reports the task running and its address is followed.
  const addresses = await waitFor(`${name}'s address once healthy`, async () => source.tasksOf(name), (found) => found?.length === 1, 60_000);
  expect(addresses).toHaveLength(1);
}, 180_000);
