/**
 * The route table: the one place where route changes from every source meet. Changes become a
 * candidate version, which the data plane checks, which is persisted (fsynced), and only then
 * served and acknowledged.
 *
 * Group commit: changes are decided one at a time in arrival order, but the changes that arrive
 * while a version is being committed wait together and become the next version, checked, saved
 * and applied once. Each caller still gets the outcome of its own change.
 */
import type { RouteSource, RouteTableSnapshot, ServiceEntry } from '../routes/model.js';
import type { DataPlane } from '../planes/plane.js';
import { PlaneRejection } from '../planes/plane.js';
import type { RouteStore } from './store.js';
import { Draft, holdersOf, judgePuts, judgeRemoves, refusalSummary } from './draft.js';
import type { EntryRefusal, IndexedEntry } from './draft.js';
import { NotConfirmedDurable } from '../util/atomic-file.js';

export type { EntryRefusal } from './draft.js';

export type ChangeOutcome =
  | { readonly ok: true; readonly version: number; readonly changed: boolean }
  | { readonly ok: false; readonly status: 400 | 409 | 500 | 503; readonly message: string };

/** The outcome of a change to several services at once: all of it, or none of it. */
export type BulkOutcome =
  | { readonly ok: true; readonly version: number; /** Services added, replaced or removed. */ readonly changed: number }
  | {
      readonly ok: false;
      readonly status: 400 | 409 | 500 | 503;
      readonly message: string;
      /** The entries refused (400, 409), by position; empty when the change as a whole failed (500, 503). */
      readonly refused: readonly EntryRefusal[];
    };

type BulkFailure = Extract<BulkOutcome, { ok: false }>;

export interface TableLogger {
  info(object: object, message: string): void;
  error(object: object, message: string): void;
}

type Audit = Readonly<Record<string, unknown>>;

type Change =
  | { readonly kind: 'put'; readonly entries: readonly ServiceEntry[]; readonly audit: Audit; readonly settle: (outcome: BulkOutcome) => void }
  | {
      readonly kind: 'remove';
      readonly names: readonly string[];
      readonly onlyFrom: RouteSource | undefined;
      readonly audit: Audit;
      readonly settle: (outcome: BulkOutcome) => void;
    };

/** Where a change request came from, for metrics: a source of routes, or the bulk API. */
export type ChangeSource = RouteSource | 'bulk';
export type ChangeResult = 'changed' | 'unchanged' | 'refused' | 'failed';
/** What a change request was about, for the dashboard's list of recent changes. */
export interface ChangeDetail {
  /** The services the request named (for a bulk request, all of them). */
  readonly services: readonly string[];
  /** Why it was refused or failed. */
  readonly message?: string;
}
export type OutcomeListener = (source: ChangeSource, result: ChangeResult, seconds: number, detail: ChangeDetail) => void;

type Unsettled<T> = T extends unknown ? Omit<T, 'settle'> : never;

type Queued = Change | { readonly kind: 'reload'; readonly settle: (outcome: ChangeOutcome) => void };

/** A change decided against a batch's draft: refused, or made there (`changed` 0: nothing to do). */
type Decision = { readonly refusal: BulkFailure } | { readonly changed: number; /** Entries put, by position. */ readonly put: readonly IndexedEntry[] };

interface Staged {
  readonly change: Change;
  readonly decision: Decision;
}

export class RouteTable {
  private current: RouteTableSnapshot;
  /** Which service holds each route of `current`; updated in place with each committed version. */
  private readonly holders: Map<string, string>;
  private readonly waiting: Queued[] = [];
  private draining = false;
  private readonly listeners: ((snapshot: RouteTableSnapshot) => void)[] = [];
  private readonly outcomeListeners: OutcomeListener[] = [];

  constructor(
    initial: RouteTableSnapshot,
    private readonly store: RouteStore,
    private readonly plane: DataPlane,
    private readonly log: TableLogger,
  ) {
    this.current = initial;
    this.holders = holdersOf(initial.services);
  }

  snapshot(): RouteTableSnapshot {
    return this.current;
  }

  /** Called with every saved version, after the data plane was asked to serve it. */
  onChange(listener: (snapshot: RouteTableSnapshot) => void): void {
    this.listeners.push(listener);
  }

  /** Called with the outcome of every change request and the time from request to answer (metrics). */
  onOutcome(listener: OutcomeListener): void {
    this.outcomeListeners.push(listener);
  }

  private submit(item: Unsettled<Change>, source: ChangeSource): Promise<BulkOutcome> {
    const started = performance.now();
    return new Promise<BulkOutcome>((settle) => this.enqueue({ ...item, settle })).then((outcome) => {
      const result = !outcome.ok ? (outcome.status >= 500 ? 'failed' : 'refused') : outcome.changed > 0 ? 'changed' : 'unchanged';
      const seconds = (performance.now() - started) / 1000;
      const detail: ChangeDetail = {
        services: item.kind === 'put' ? item.entries.map((entry) => entry.service.name) : item.names,
        ...(outcome.ok ? {} : { message: outcome.message }),
      };
      for (const listener of this.outcomeListeners) listener(source, result, seconds, detail);
      return outcome;
    });
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
   * The rule is checked when the change's turn comes, against the table as the changes before it
   * left it: a label update racing a hand-sent reconfigure cannot overwrite it, whatever order
   * the two arrive in.
   */
  async upsert(entry: ServiceEntry): Promise<ChangeOutcome> {
    const audit = { service: entry.service.name, source: entry.source, action: 'reconfigure' };
    return single(await this.submit({ kind: 'put', entries: [entry], audit, }, entry.source));
  }

  /**
   * Adds or replaces several services as one change: one version, or nothing when any entry is
   * refused (`refused` names each, by position in `entries`). Each entry follows upsert's rules.
   */
  upsertMany(entries: readonly ServiceEntry[]): Promise<BulkOutcome> {
    const audit = { services: entries.length, action: 'reconfigure' };
    return this.submit({ kind: 'put', entries, audit, }, 'bulk');
  }

  /**
   * What upsertMany would refuse in `entries` if the table stayed as it is now, data plane aside:
   * for reporting every refused entry of a request that is refused anyway.
   */
  refusalsFor(entries: readonly ServiceEntry[]): readonly EntryRefusal[] {
    return judgePuts(new Draft(this.current, this.holders), entries).refused;
  }

  /** Removes a service; with `onlyFrom`, only if that source configured it (a source never removes another's routes). */
  async remove(name: string, onlyFrom?: RouteSource): Promise<ChangeOutcome> {
    const audit = { service: name, action: 'remove' };
    return single(await this.submit({ kind: 'remove', names: [name], onlyFrom, audit, }, onlyFrom ?? 'api'));
  }

  /** Removes several services as one change; names not in the table are left out (unchanged). */
  removeMany(names: readonly string[], onlyFrom?: RouteSource): Promise<BulkOutcome> {
    const audit = { services: names.length, action: 'remove' };
    return this.submit({ kind: 'remove', names, onlyFrom, audit, }, 'bulk');
  }

  /** Re-applies the current table from scratch, in turn with changes. */
  reloadPlane(): Promise<ChangeOutcome> {
    return new Promise((settle) => this.enqueue({ kind: 'reload', settle }));
  }

  private enqueue(item: Queued): void {
    this.waiting.push(item);
    if (this.draining) return;
    this.draining = true;
    // Changes sent in the same tick start as one batch.
    queueMicrotask(() => void this.drain());
  }

  private async drain(): Promise<void> {
    for (let next = this.waiting[0]; next !== undefined; next = this.waiting[0]) {
      if (next.kind === 'reload') {
        this.waiting.shift();
        next.settle(await this.reload());
        continue;
      }
      const reloadAt = this.waiting.findIndex((item) => item.kind === 'reload');
      const batch = this.waiting.splice(0, reloadAt < 0 ? this.waiting.length : reloadAt).filter(isChange);
      try {
        await this.commit(batch);
      } catch (error) {
        // A bug, not a refusal: answer rather than leave the callers waiting.
        this.log.error({ ...auditOf(batch), reason: (error as Error).message }, 'change failed');
        for (const change of batch) change.settle({ ok: false, status: 500, message: `internal error: ${(error as Error).message}`, refused: [] });
      }
    }
    this.draining = false;
  }

  private async reload(): Promise<ChangeOutcome> {
    try {
      await this.plane.reload();
    } catch (error) {
      return { ok: false, status: 500, message: `the ${this.plane.kind} data plane failed to reload: ${(error as Error).message}` };
    }
    this.log.info({ action: 'reload', version: this.current.version }, 'data plane reloaded');
    return { ok: true, version: this.current.version, changed: false };
  }

  /** Commits a batch of changes as one version; a batch the data plane refuses is committed one change at a time. */
  private async commit(batch: readonly Change[]): Promise<void> {
    const draft = new Draft(this.current, this.holders);
    const staged: Staged[] = batch.map((change) => ({ change, decision: decide(change, draft) }));
    const firstChange = staged.findIndex(({ decision }) => changesSomething(decision));
    if (firstChange < 0) {
      for (const { change, decision } of staged) change.settle(decided(decision, this.current.version));
      return;
    }
    // Changes decided after the first one that changes something were decided against a table
    // that never exists if the batch is not saved: they get the batch's failure.
    const nothingChanged = (message: string) =>
      staged.forEach(({ change, decision }, at) =>
        change.settle(at < firstChange ? decided(decision, this.current.version) : { ok: false, status: 503, message, refused: [] }),
      );
    const audit = auditOf(batch);
    const candidate: RouteTableSnapshot = { version: this.current.version + 1, services: draft.table() };
    try {
      await this.plane.validate(candidate);
    } catch (error) {
      if (error instanceof PlaneRejection) {
        this.log.error({ ...audit, reason: error.message }, 'change refused by the data plane');
        const [alone] = staged;
        if (staged.length > 1 || alone === undefined) {
          for (const change of batch) await this.commit([change]);
          return;
        }
        alone.change.settle(await this.planeRefusal(alone, error.message));
        return;
      }
      // Checking needs scratch files in the state directory: a full disk lands here.
      this.log.error({ ...audit, reason: (error as Error).message }, 'change could not be checked');
      nothingChanged(`the change could not be checked (${(error as Error).message}); nothing was changed and the previous routing keeps serving`);
      return;
    }
    let unconfirmed: string | undefined;
    try {
      await this.store.save(candidate, draft.changes());
    } catch (error) {
      if (!(error instanceof NotConfirmedDurable)) {
        this.log.error({ ...audit, reason: (error as Error).message }, 'change not persisted');
        nothingChanged(`the change could not be saved to ${this.store.file} (${(error as Error).message}); nothing was changed and the previous routing keeps serving`);
        return;
      }
      // The new table is on disk and a restart serves it: serve it now too, and say why the
      // acknowledgement is not a plain OK.
      unconfirmed = error.message;
      this.log.error({ ...audit, reason: unconfirmed }, 'change saved, durability not confirmed by the disk');
    }
    this.current = candidate;
    draft.updateHolders(this.holders);
    let failure: string | undefined;
    try {
      await this.plane.apply(candidate);
      this.log.info({ ...audit, version: candidate.version }, 'route table changed');
    } catch (error) {
      this.log.error({ ...audit, reason: (error as Error).message }, 'change saved but not applied');
      failure = `the change was saved but the ${this.plane.kind} data plane failed to apply it (${(error as Error).message}); it is retried on the next change or /reload`;
    }
    for (const listener of this.listeners) listener(candidate);
    if (failure === undefined && unconfirmed !== undefined) {
      failure = `the change is saved in ${this.store.file} and served, but the disk did not confirm it would survive a crash (${unconfirmed}); check the disk: the next change saved tries again`;
    }
    for (const { change, decision } of staged) {
      change.settle(failure !== undefined && changesSomething(decision) ? { ok: false, status: 500, message: failure, refused: [] } : decided(decision, candidate.version));
    }
  }

  /** The answer to a change the data plane refused on its own, naming the entries it refuses. */
  private async planeRefusal({ change, decision }: Staged, reason: string): Promise<BulkFailure> {
    if (change.kind === 'remove' || 'refusal' in decision) return { ok: false, status: 400, message: this.planeMessage(reason), refused: [] };
    const { put } = decision;
    const refused = put.length === 1 ? put.map((entry) => this.planeRefused(entry, reason)) : await this.isolateRejected(put, reason, { left: 2 * Math.ceil(Math.log2(put.length)) + 2 });
    return { ok: false, status: 400, message: refusalSummary(refused, change.entries.length), refused };
  }

  /**
   * Which entries of a change the data plane refuses: each half is checked on top of the current
   * table, recursively, within a budget of checks. A group refused only as a whole (or once the
   * budget is spent) is refused entry by entry with the reason given for it.
   */
  private async isolateRejected(group: readonly IndexedEntry[], reason: string, budget: { left: number }): Promise<EntryRefusal[]> {
    const whole = () => group.map((entry) => this.planeRefused(entry, reason));
    if (group.length === 1 || budget.left < 2) return whole();
    const middle = Math.ceil(group.length / 2);
    const found: EntryRefusal[] = [];
    for (const half of [group.slice(0, middle), group.slice(middle)]) {
      const draft = new Draft(this.current, this.holders);
      const judged = judgePuts(draft, half.map(({ entry }) => entry));
      if (judged.refused.length > 0) return whole(); // the halves only make sense together
      draft.put(judged.changing.map(({ entry }) => entry));
      budget.left--;
      try {
        await this.plane.validate({ version: this.current.version + 1, services: draft.table() });
      } catch (error) {
        if (!(error instanceof PlaneRejection)) return whole();
        found.push(...(await this.isolateRejected(half, error.message, budget)));
      }
    }
    return found.length > 0 ? found : whole();
  }

  private planeRefused({ index, entry }: IndexedEntry, reason: string): EntryRefusal {
    return { index, name: entry.service.name, status: 400, message: this.planeMessage(reason) };
  }

  private planeMessage(reason: string): string {
    return `the ${this.plane.kind} data plane refused this configuration: ${reason}`;
  }
}

/** Decides a change against the draft and, unless refused, makes it there. */
function decide(change: Change, draft: Draft): Decision {
  if (change.kind === 'remove') {
    const names = judgeRemoves(draft, change.names, change.onlyFrom);
    draft.remove(names);
    return { changed: names.length, put: [] };
  }
  const { refused, changing } = judgePuts(draft, change.entries);
  if (refused.length > 0) {
    const status = refused.every((r) => r.status === 409) ? 409 : 400;
    return { refusal: { ok: false, status, message: refusalSummary(refused, change.entries.length), refused } };
  }
  draft.put(changing.map(({ entry }) => entry));
  return { changed: changing.length, put: changing };
}

function changesSomething(decision: Decision): boolean {
  return 'changed' in decision && decision.changed > 0;
}

function decided(decision: Decision, version: number): BulkOutcome {
  return 'refusal' in decision ? decision.refusal : { ok: true, version, changed: decision.changed };
}

function isChange(item: Queued): item is Change {
  return item.kind !== 'reload';
}

function auditOf(batch: readonly Change[]): Audit {
  const [first] = batch;
  return batch.length === 1 && first !== undefined ? first.audit : { batch: batch.map((change) => change.audit) };
}

/** A one-service change's outcome, in the shape the single-service callers know. */
function single(outcome: BulkOutcome): ChangeOutcome {
  if (outcome.ok) return { ok: true, version: outcome.version, changed: outcome.changed > 0 };
  const [refusal] = outcome.refused;
  return refusal === undefined ? { ok: false, status: outcome.status, message: outcome.message } : { ok: false, status: refusal.status, message: refusal.message };
}
