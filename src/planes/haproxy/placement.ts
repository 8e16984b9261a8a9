/**
 * Which running HAProxy backend serves which destination, decided without HAProxy: a pure
 * function of what the running worker has and what the next table needs. A destination keeps
 * its backend while the backend's profile (its own directives) still fits; a new one takes a
 * free spare with the same profile; only when none fits is a reload needed.
 */
import type { BackendSpec } from './render.js';
import { SPARE_PREFIX } from './render.js';

export interface PlacedBackend {
  readonly profile: string;
  /** The destination it serves now; undefined when free. */
  readonly spec: BackendSpec | undefined;
}

export interface Placement {
  /** Spec key -> backend name, for every spec that has a backend without a reload. */
  readonly assigned: ReadonlyMap<string, string>;
  /** Backends that stop serving their destination. */
  readonly released: readonly string[];
  /** Keys no running backend can serve: the configuration must be rendered again and reloaded. */
  readonly unplaced: readonly string[];
}

function spareNumber(name: string): number {
  return Number(name.slice(SPARE_PREFIX.length));
}

export function place(
  specs: ReadonlyMap<string, BackendSpec>,
  backends: ReadonlyMap<string, PlacedBackend>,
  assigned: ReadonlyMap<string, string>,
): Placement {
  const next = new Map<string, string>();
  const released: string[] = [];
  for (const [key, name] of assigned) {
    const spec = specs.get(key);
    if (spec !== undefined && backends.get(name)?.profile === spec.profile) next.set(key, name);
    else released.push(name);
  }
  const free = new Map<string, string[]>();
  for (const [name, backend] of backends) {
    if (backend.spec !== undefined || !name.startsWith(SPARE_PREFIX)) continue;
    const list = free.get(backend.profile) ?? [];
    list.push(name);
    free.set(backend.profile, list);
  }
  for (const list of free.values()) list.sort((a, b) => spareNumber(b) - spareNumber(a));
  const unplaced: string[] = [];
  for (const [key, spec] of specs) {
    if (next.has(key)) continue;
    const spare = free.get(spec.profile)?.pop();
    if (spare === undefined) unplaced.push(key);
    else next.set(key, spare);
  }
  return { assigned: next, released, unplaced };
}

/** Free spares left once `placement` is applied (released spares are free again). */
export function freeSpares(backends: ReadonlyMap<string, PlacedBackend>, placement: Placement): number {
  const taken = new Set(placement.assigned.values());
  let count = 0;
  for (const name of backends.keys()) if (name.startsWith(SPARE_PREFIX) && !taken.has(name)) count++;
  return count;
}
