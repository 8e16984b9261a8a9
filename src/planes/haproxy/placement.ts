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

/**
 * `backends` in the order they were rendered (spares by number), so the first free spare is
 * found without sorting. A change among 10,000 services costs a pass over maps, nothing more.
 */
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
  const unplaced: string[] = [];
  const spares = freeSpareNames(backends);
  for (const [key, spec] of specs) {
    if (next.has(key)) continue;
    // Spares share one profile; a destination with another one needs a backend of its own.
    const spare = spares.profile === spec.profile ? spares.next() : undefined;
    if (spare === undefined) unplaced.push(key);
    else next.set(key, spare);
  }
  return { assigned: next, released, unplaced };
}

/** Free spares one after the other, found as they are needed; `profile` is the one spares have. */
function freeSpareNames(backends: ReadonlyMap<string, PlacedBackend>): { readonly profile: string | undefined; next(): string | undefined } {
  const entries = backends.entries();
  let pending: string | undefined;
  let profile: string | undefined;
  const scan = (): string | undefined => {
    for (let step = entries.next(); step.done !== true; step = entries.next()) {
      const [name, backend] = step.value;
      if (!name.startsWith(SPARE_PREFIX)) continue;
      profile ??= backend.profile;
      if (backend.spec === undefined) return name;
    }
    return undefined;
  };
  return {
    get profile() {
      if (profile === undefined && pending === undefined) pending = scan();
      return profile;
    },
    next() {
      const found = pending ?? scan();
      pending = undefined;
      return found;
    },
  };
}

/** Free spares of a running worker. */
export function freeSpares(backends: ReadonlyMap<string, PlacedBackend>): number {
  let count = 0;
  for (const [name, backend] of backends) if (backend.spec === undefined && name.startsWith(SPARE_PREFIX)) count++;
  return count;
}
