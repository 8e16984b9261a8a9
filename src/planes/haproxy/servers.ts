/**
 * Runtime API commands that bring a running worker to a wanted state without a reload: servers
 * added and drained in a backend, map entries added, changed and removed. Pure functions from
 * (what HAProxy has, what is wanted) to commands; plane.ts runs them.
 */
import { serverName } from './render.js';

/** A server line of the configuration: kept across address changes, so its idle connections are reused (HAProxy 2.6 reuses none for servers added at run time). */
export interface Slot {
  readonly name: string;
  /** The replica it sends to; undefined while in maintenance (unused). */
  address: string | undefined;
}

export interface LiveBackend {
  readonly name: string;
  readonly slots: Slot[];
  /** Server options the slots were written with: a slot serves only a destination with the same. */
  readonly slotOptions: string;
  /** Address -> name of servers added at run time, beyond the slots. */
  readonly added: Map<string, string>;
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

/** Commands that make `backend` send new requests to exactly `wanted` (addresses) on `port`; updates `backend`. */
export function syncServers(backend: LiveBackend, wanted: readonly string[], port: number, options: string): ServerChanges {
  const add: string[] = [];
  const retire: string[] = [];
  const drain: string[] = [];
  const keep = new Set(wanted);
  const held = new Set<string>();
  // A slot retired here is not given a new address in the same change: its `state maint` runs
  // after the additions, and would take the new replica out of rotation.
  const retiredNow = new Set<Slot>();
  for (const slot of backend.slots) {
    if (slot.address === undefined) continue;
    if (keep.has(slot.address)) held.add(slot.address);
    else {
      retire.push(`set server ${backend.name}/${slot.name} state maint`);
      slot.address = undefined;
      retiredNow.add(slot);
    }
  }
  for (const [address, name] of backend.added) {
    if (keep.has(address)) held.add(address);
    else {
      backend.added.delete(address);
      retire.push(`disable server ${backend.name}/${name}`);
      drain.push(`${backend.name}/${name}`);
    }
  }
  const freeSlots = options === backend.slotOptions ? backend.slots.filter((slot) => slot.address === undefined && !retiredNow.has(slot)) : [];
  for (const address of wanted) {
    if (held.has(address)) continue;
    const slot = freeSlots.shift();
    if (slot !== undefined) {
      slot.address = address;
      add.push(`set server ${backend.name}/${slot.name} addr ${address} port ${port}`, `set server ${backend.name}/${slot.name} state ready`);
      continue;
    }
    const name = serverName(backend.nextServer++);
    backend.added.set(address, name);
    add.push(`add server ${backend.name}/${name} ${address}:${port}${options === '' ? '' : ` ${options}`}`, `enable server ${backend.name}/${name}`);
    // Checks of servers added at run time start disabled.
    if (/(?:^| )check(?: |$)/.test(options)) add.push(`enable health ${backend.name}/${name}`);
  }
  return { add, retire, drain };
}

/** Every server of `backend` taken out of rotation; updates `backend`. */
export function retireAll(backend: LiveBackend): ServerChanges {
  return syncServers(backend, [], 0, backend.slotOptions);
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
