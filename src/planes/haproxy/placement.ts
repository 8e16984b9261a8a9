/**
 * Which running HAProxy backend serves which destination, decided without HAProxy: a pure
 * function of what the running worker has and what changed in the table. A destination keeps
 * its backend while the backend's profile (its own directives) still fits; a new one takes a
 * free spare with the same profile; only when none fits is a reload needed. Only the services
 * that changed are looked at, so a change among 10,000 services costs what changed.
 */
import type { RouteTableSnapshot, Service } from '../../routes/model.js';
import type { Settings } from '../../settings/settings.js';
import type { BackendSpec } from './render.js';
import { specsOf } from './render.js';

export interface PlacedBackend {
  readonly profile: string;
}

/** The services that left or changed, those that came or changed, and their specs by key. */
export interface SpecChanges {
  readonly gone: readonly Service[];
  readonly came: readonly Service[];
  readonly removed: ReadonlyMap<string, BackendSpec>;
  readonly added: ReadonlyMap<string, BackendSpec>;
}

export interface Placement {
  /** Spec key -> backend name, for every added spec that has a backend without a reload. */
  readonly assign: ReadonlyMap<string, string>;
  /** Backends that stop serving their destination. */
  readonly release: readonly string[];
  /** Spares taken from the end of the free list. */
  readonly taken: number;
  /** Keys no running backend can serve: the configuration must be rendered again and reloaded. */
  readonly unplaced: readonly string[];
}

/** The specs of services that differ between two tables (unchanged services are the same objects in both). */
export function specChanges(before: RouteTableSnapshot, after: RouteTableSnapshot, settings: Settings): SpecChanges {
  const gone: Service[] = [];
  const came: Service[] = [];
  const removed = new Map<string, BackendSpec>();
  const added = new Map<string, BackendSpec>();
  for (const [name, { service }] of before.services) {
    if (after.services.get(name)?.service === service) continue;
    gone.push(service);
    for (const spec of specsOf(service, settings)) removed.set(spec.key, spec);
  }
  for (const [name, { service }] of after.services) {
    if (before.services.get(name)?.service === service) continue;
    came.push(service);
    for (const spec of specsOf(service, settings)) added.set(spec.key, spec);
  }
  return { gone, came, removed, added };
}

/**
 * `free` lists free spares, the next one to take last; they all have `spareProfile`.
 */
export function place(
  changes: SpecChanges,
  backends: ReadonlyMap<string, PlacedBackend>,
  assigned: ReadonlyMap<string, string>,
  free: readonly string[],
  spareProfile: string,
): Placement {
  const assign = new Map<string, string>();
  const release: string[] = [];
  for (const key of changes.removed.keys()) {
    const name = assigned.get(key);
    if (name === undefined) continue;
    const spec = changes.added.get(key);
    if (spec !== undefined && backends.get(name)?.profile === spec.profile) assign.set(key, name);
    else release.push(name);
  }
  const unplaced: string[] = [];
  let taken = 0;
  for (const [key, spec] of changes.added) {
    if (assign.has(key)) continue;
    const spare = spec.profile === spareProfile ? free[free.length - 1 - taken] : undefined;
    if (spare === undefined) unplaced.push(key);
    else {
      assign.set(key, spare);
      taken++;
    }
  }
  return { assign, release, taken, unplaced };
}
