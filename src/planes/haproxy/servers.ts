/**
 * Runtime API commands that bring a running worker to a wanted state without a reload: servers
 * added and drained in a backend, map entries added, changed and removed. Pure functions from
 * (what HAProxy has, what is wanted) to commands; plane.ts runs them.
 */
import { endpointOf, serverArguments, serverName } from './render.js';
import type { ServerTarget } from './render.js';

/** A server line of the configuration: kept across address changes, so its idle connections are reused (HAProxy 2.6 reuses none for servers added at run time). */
export interface Slot {
  readonly name: string;
  /** Server options the line was written with: the slot serves only a source with the same. */
  readonly options: string;
  /** The replica it sends to; undefined while in maintenance (unused). */
  target: ServerTarget | undefined;
}

/** A server added at run time. */
export interface AddedServer {
  readonly name: string;
  target: ServerTarget;
}

export interface LiveBackend {
  readonly name: string;
  readonly slots: Slot[];
  /** Servers added at run time, beyond the slots, by endpoint (endpointOf). */
  readonly added: Map<string, AddedServer>;
  /** Sequence number of the next server name. */
  nextServer: number;
}

export interface ServerChanges {
  /** Commands that put servers in rotation, run before maps point requests at the backend. */
  readonly add: string[];
  /** Commands that take servers out of rotation (in-flight requests finish), run after maps changed. */
  readonly retire: string[];
  /** Servers added at run time and now retired: deleted once their last connection ends. */
  readonly drain: string[];
}

/**
 * Commands that make `backend` send new requests to exactly `wanted`; updates `backend`. A
 * server of an endpoint still wanted is kept as it is: a backend whose sources change their
 * options or weights is retired first, or rendered again.
 */
export function syncServers(backend: LiveBackend, wanted: readonly ServerTarget[]): ServerChanges {
  const add: string[] = [];
  const retire: string[] = [];
  const drain: string[] = [];
  const keep = new Map(wanted.map((target) => [endpointOf(target), target]));
  const held = new Set<string>();
  // A slot retired here is not given a new address in the same change: its `state maint` runs
  // after the additions, and would take the new replica out of rotation.
  const retiredNow = new Set<Slot>();
  for (const slot of backend.slots) {
    if (slot.target === undefined) continue;
    const endpoint = endpointOf(slot.target);
    const target = keep.get(endpoint);
    if (target !== undefined) {
      held.add(endpoint);
      slot.target = target;
    } else {
      retire.push(`set server ${backend.name}/${slot.name} state maint`);
      slot.target = undefined;
      retiredNow.add(slot);
    }
  }
  for (const [endpoint, server] of backend.added) {
    const target = keep.get(endpoint);
    if (target !== undefined) {
      held.add(endpoint);
      server.target = target;
    } else {
      backend.added.delete(endpoint);
      retire.push(`disable server ${backend.name}/${server.name}`);
      drain.push(`${backend.name}/${server.name}`);
    }
  }
  const freeSlots = backend.slots.filter((slot) => slot.target === undefined && !retiredNow.has(slot));
  for (const [endpoint, target] of keep) {
    if (held.has(endpoint)) continue;
    const { address, source } = target;
    const free = freeSlots.findIndex((slot) => slot.options === source.serverOptions);
    const slot = free === -1 ? undefined : freeSlots.splice(free, 1)[0];
    if (slot !== undefined) {
      slot.target = target;
      const server = `${backend.name}/${slot.name}`;
      add.push(`set server ${server} addr ${address} port ${source.port}`);
      if (source.weight !== undefined) add.push(`set server ${server} weight ${source.weight}`);
      add.push(`set server ${server} state ready`);
      continue;
    }
    const name = serverName(backend.nextServer++);
    backend.added.set(endpoint, { name, target });
    add.push(`add server ${backend.name}/${name} ${endpoint}${serverArguments(source)}`, `enable server ${backend.name}/${name}`);
    // Checks of servers added at run time start disabled.
    if (/(?:^| )check(?: |$)/.test(source.serverOptions)) add.push(`enable health ${backend.name}/${name}`);
  }
  return { add, retire, drain };
}

/** Every server of `backend` taken out of rotation; updates `backend`. */
export function retireAll(backend: LiveBackend): ServerChanges {
  return syncServers(backend, []);
}

/** The servers `backend` sends new requests to, by name. */
export function liveServers(backend: LiveBackend): { readonly name: string; readonly target: ServerTarget }[] {
  const fromSlots = backend.slots.flatMap(({ name, target }) => (target === undefined ? [] : [{ name, target }]));
  return [...fromSlots, ...backend.added.values()];
}

/** The CLI splits a command line at ';' unless escaped; map keys may contain one (RFC 3986 paths). */
function escapeArgument(value: string): string {
  return value.replace(/[\\;]/g, (c) => `\\${c}`);
}

/** Payload lines per `add map` command: HAProxy reads a command and its payload into one buffer. */
const MAX_PAYLOAD = 8000;

/** Map entries to change: key -> new value, or undefined to delete it. */
export type MapEdits = Map<string, string | undefined>;

/**
 * Commands that apply `edits` to map `file`, entry by entry (each entry changes atomically),
 * skipping those that change nothing; `current` is updated to match.
 */
export function mapCommands(file: string, current: Map<string, string>, edits: MapEdits): string[] {
  const commands: string[] = [];
  let payload = '';
  const flush = () => {
    if (payload !== '') commands.push(`add map ${file} <<\n${payload.slice(0, -1)}`);
    payload = '';
  };
  for (const [key, value] of edits) {
    const old = current.get(key);
    if (old === value) continue;
    if (value === undefined) {
      commands.push(`del map ${file} ${escapeArgument(key)}`);
      current.delete(key);
    } else if (old !== undefined) {
      commands.push(`set map ${file} ${escapeArgument(key)} ${value}`);
      current.set(key, value);
    } else {
      const line = `${key} ${value}\n`;
      if (payload.length + line.length > MAX_PAYLOAD) flush();
      payload += line;
      current.set(key, value);
    }
  }
  flush();
  return commands;
}
