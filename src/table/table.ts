/**
 * The route table: the one place where route changes from every source meet. A change becomes
 * a candidate version, is checked by the data plane, persisted (fsynced), and only then served
 * and acknowledged. Changes are applied one at a time, in arrival order.
 */
import type { RouteSource, RouteTableSnapshot, Service, ServiceEntry } from '../routes/model.js';
import { routeKey, routesOf } from '../routes/model.js';
import type { DataPlane } from '../planes/plane.js';
import { PlaneRejection } from '../planes/plane.js';
import type { RouteStore } from './store.js';
import { NotConfirmedDurable } from '../util/atomic-file.js';

export type ChangeOutcome =
  | { readonly ok: true; readonly version: number; readonly changed: boolean }
  | { readonly ok: false; readonly status: 400 | 409 | 500 | 503; readonly message: string };

export interface TableLogger {
  info(object: object, message: string): void;
  error(object: object, message: string): void;
}

export class RouteTable {
  private current: RouteTableSnapshot;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly listeners: ((snapshot: RouteTableSnapshot) => void)[] = [];

  constructor(
    initial: RouteTableSnapshot,
    private readonly store: RouteStore,
    private readonly plane: DataPlane,
    private readonly log: TableLogger,
  ) {
    this.current = initial;
  }

  snapshot(): RouteTableSnapshot {
    return this.current;
  }

  /** Called with every saved version, after the data plane was asked to serve it. */
  onChange(listener: (snapshot: RouteTableSnapshot) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Adds or replaces a service.
   *
   * Precedence: a route sent by hand (source 'api') wins over one discovered from labels (source
   * 'swarm'). An 'api' entry always replaces whatever holds the name; a 'swarm' entry for a name
   * whose current entry came from the API is ignored, and answered as ok and unchanged
   * (`changed: false`, the current version), not refused: a service both labelled and configured
   * by hand is a supported set-up rather than an error, and discovery declares every labelled
   * service again on each pass, so a refusal would be logged as an error every time. Nothing is
   * validated, saved or applied for an ignored entry, so its labels cannot cause a conflict either.
   *
   * The rule is checked here, inside the serialized queue, against the table this change would
   * replace: a label update racing a hand-sent reconfigure cannot overwrite it, whatever order
   * the two arrive in.
   */
  upsert(entry: ServiceEntry): Promise<ChangeOutcome> {
    return this.enqueue(() => {
      const existing = this.current.services.get(entry.service.name);
      if (entry.source === 'swarm' && existing?.source === 'api') {
        return { ok: true, version: this.current.version, changed: false };
      }
      const conflict = findConflict(this.current, entry.service);
      if (conflict !== undefined) return conflict;
      if (existing !== undefined && sameParams(existing, entry)) {
        return { ok: true, version: this.current.version, changed: false };
      }
      const services = new Map(this.current.services);
      services.set(entry.service.name, entry);
      return this.commit(services, { service: entry.service.name, source: entry.source, action: 'reconfigure' });
    });
  }

  /** Removes a service; with `onlyFrom`, only if that source configured it (a source never removes another's routes). */
  remove(name: string, onlyFrom?: RouteSource): Promise<ChangeOutcome> {
    return this.enqueue(() => {
      const existing = this.current.services.get(name);
      if (existing === undefined || (onlyFrom !== undefined && existing.source !== onlyFrom)) {
        return { ok: true, version: this.current.version, changed: false };
      }
      const services = new Map(this.current.services);
      services.delete(name);
      return this.commit(services, { service: name, action: 'remove' });
    });
  }

  /** Re-applies the current table from scratch, in turn with changes. */
  reloadPlane(): Promise<ChangeOutcome> {
    return this.enqueue(async () => {
      try {
        await this.plane.reload();
      } catch (error) {
        return { ok: false, status: 500, message: `the ${this.plane.kind} data plane failed to reload: ${(error as Error).message}` };
      }
      this.log.info({ action: 'reload', version: this.current.version }, 'data plane reloaded');
      return { ok: true, version: this.current.version, changed: false };
    });
  }

  private enqueue(change: () => ChangeOutcome | Promise<ChangeOutcome>): Promise<ChangeOutcome> {
    const result = this.queue.then(change, change);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async commit(services: Map<string, ServiceEntry>, audit: Record<string, string>): Promise<ChangeOutcome> {
    const candidate: RouteTableSnapshot = { version: this.current.version + 1, services };
    try {
      await this.plane.validate(candidate);
    } catch (error) {
      if (error instanceof PlaneRejection) {
        this.log.error({ ...audit, reason: error.message }, 'change refused by the data plane');
        return { ok: false, status: 400, message: `the ${this.plane.kind} data plane refused this configuration: ${error.message}` };
      }
      // Checking needs scratch files in the state directory: a full disk lands here.
      this.log.error({ ...audit, reason: (error as Error).message }, 'change could not be checked');
      return {
        ok: false,
        status: 503,
        message: `the change could not be checked (${(error as Error).message}); nothing was changed and the previous routing keeps serving`,
      };
    }
    let unconfirmed: string | undefined;
    try {
      await this.store.save(candidate);
    } catch (error) {
      if (error instanceof NotConfirmedDurable) {
        // The new table is on disk and a restart serves it: serve it now too, and say why the
        // acknowledgement is not a plain OK.
        unconfirmed = error.message;
        this.log.error({ ...audit, reason: unconfirmed }, 'change saved, durability not confirmed by the disk');
      } else return this.notSaved(error, audit);
    }
    this.current = candidate;
    try {
      await this.plane.apply(candidate);
    } catch (error) {
      this.log.error({ ...audit, reason: (error as Error).message }, 'change saved but not applied');
      for (const listener of this.listeners) listener(candidate);
      return {
        ok: false,
        status: 500,
        message: `the change was saved but the ${this.plane.kind} data plane failed to apply it (${(error as Error).message}); it is retried on the next change or /reload`,
      };
    }
    this.log.info({ ...audit, version: candidate.version }, 'route table changed');
    for (const listener of this.listeners) listener(candidate);
    if (unconfirmed !== undefined) {
      return {
        ok: false,
        status: 500,
        message: `the change is saved in ${this.store.file} and served, but the disk did not confirm it would survive a crash (${unconfirmed}); check the disk: every later change writes the whole table again`,
      };
    }
    return { ok: true, version: candidate.version, changed: true };
  }

  private notSaved(error: unknown, audit: Record<string, string>): ChangeOutcome {
    this.log.error({ ...audit, reason: (error as Error).message }, 'change not persisted');
    return {
      ok: false,
      status: 503,
      message: `the change could not be saved to ${this.store.file} (${(error as Error).message}); nothing was changed and the previous routing keeps serving`,
    };
  }
}

function sameParams(a: ServiceEntry, b: ServiceEntry): boolean {
  return a.source === b.source && JSON.stringify(a.params) === JSON.stringify(b.params);
}

/** A (domain, path) pair may belong to one service only, and to one destination of it. */
function findConflict(snapshot: RouteTableSnapshot, service: Service): ChangeOutcome | undefined {
  const own = new Map<string, number>();
  for (const route of routesOf(service)) {
    const key = routeKey(route);
    const index = own.get(key);
    if (index !== undefined && index !== route.destination.index) {
      return { ok: false, status: 400, message: `${describe(route)} is given to two destinations of ${service.name} (indexes ${index} and ${route.destination.index}); give it to one` };
    }
    own.set(key, route.destination.index);
  }
  for (const [name, entry] of snapshot.services) {
    if (name === service.name) continue;
    for (const route of routesOf(entry.service)) {
      if (own.has(routeKey(route))) {
        return {
          ok: false,
          status: 409,
          message: `${describe(route)} is already routed to service ${name}; remove it from ${name} first or choose another path or domain`,
        };
      }
    }
  }
  return undefined;
}

function describe(route: { domain: string | null; path: string }): string {
  return route.domain === null ? `servicePath ${route.path}` : `serviceDomain ${route.domain} with path ${route.path}`;
}
