/**
 * Keeps the replicas of the proxy in step. What is replicated is what only one replica knows:
 * routes and certificates sent by hand, and the certificates ACME issued to the replica that
 * ordered them. Discovered routes are not: every replica that can read Swarm (on a manager)
 * discovers them itself, and a replica that cannot (on a worker) takes the discovered routes of a
 * peer that can.
 *
 * Every change sent through the API passes through here: it is made in the route table (or the
 * certificate table) as before, then stamped in the ledger (ledger.ts). Every `intervalSeconds`
 * each replica asks each peer for what it holds (`GET /v1/flow-proxy/replication`, answered
 * "unchanged" while nothing changed) and applies every item whose stamp is newer than its own:
 * a replica that missed changes (started late, cut off, restarted with an empty state directory)
 * catches up within one interval of being able to reach any peer that has them. A replica
 * reports ready (`/status`) only once its first round has asked every peer it found.
 *
 * Changes to one item are made one at a time (a lock per item), so the table and the ledger
 * agree on which change an item holds, whichever way the changes arrive.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../log.js';
import type { RouteTableSnapshot, ServiceEntry } from '../routes/model.js';
import { parseServiceParams } from '../routes/params.js';
import type { ParseContext } from '../routes/params.js';
import { DeclaredServices } from '../sources/declared.js';
import type { BulkOutcome, ChangeOutcome, RouteTable } from '../table/table.js';
import type { CertificateOutcome, CertificateTable } from '../tls/certificate-table.js';
import { compareStamps, isStamp, UNSTAMPED } from './ledger.js';
import type { Ledger, Stamp } from './ledger.js';
import { jsonOf } from './peers.js';
import type { Peers } from './peers.js';

export const REPLICATION_PATH = '/v1/flow-proxy/replication';

type Kind = 'route' | 'cert';
type ReplicatedSource = 'api' | 'acme';

/** One replicated item as a replica describes it to its peers. */
export interface ReplicatedItem {
  readonly Kind: Kind;
  readonly Name: string;
  readonly At: number;
  readonly By: string;
  /** A route's reconfigure parameters. */
  readonly Params?: Readonly<Record<string, string>>;
  /** A certificate's PEM bundle. */
  readonly Pem?: string;
  /** Who gave a certificate: the API, or the ACME server through the replica that ordered it. */
  readonly Source?: ReplicatedSource;
  /** Set for a removal. */
  readonly Removed?: true;
}

/** The answer of GET /v1/flow-proxy/replication. */
export interface ReplicaState {
  readonly Replica: string;
  /** Changes whenever anything below changes; sent back as If-None-Match. */
  readonly Digest: string;
  /** Whether this replica discovers services from Swarm itself. */
  readonly Discovers: boolean;
  readonly Items: readonly ReplicatedItem[];
  /** The parameters of the routes it discovered (only when Discovers). */
  readonly Discovered: readonly Readonly<Record<string, string>>[];
}

export interface ReplicationObserver {
  round(reached: number, unreached: number): void;
  change(kind: Kind, result: 'applied' | 'refused'): void;
}

export interface ReplicationOptions {
  readonly table: RouteTable;
  readonly certificates: CertificateTable;
  readonly ledger: Ledger;
  readonly peers: Peers;
  readonly parseContext: ParseContext;
  /** Whether this replica discovers services from Swarm now (its last listing succeeded); the others take a discovering peer's discovered routes. */
  readonly discovers: () => boolean;
  /**
   * Set when discovered routes come from a Swarm Listener (LISTENER_ADDRESS): pulled at start,
   * and removed by the listener's notifications, which reach one replica as an API remove. A
   * removal from a peer then takes out a discovered route too; otherwise only a hand-sent one.
   */
  readonly listenerFed: boolean;
  /** Seconds between catch-up rounds; 0: none (changes are still stamped, and distribute=true still passes them on). */
  readonly intervalSeconds: number;
  /** Told what each round found and did (metrics). */
  readonly observer?: ReplicationObserver;
  readonly log: Logger;
}

const PULL_TIMEOUT_MS = 2000;
/** How often a replica forgets removals older than TOMBSTONE_DAYS (ledger.ts). */
const REMOVALS_CHECK_MS = 3_600_000;

interface PeerView {
  readonly state: ReplicaState;
  /** Whether every item of `state` was applied or judged, so an unchanged answer needs no work. */
  merged: boolean;
}

export class Replication {
  private readonly locks = new KeyedLock();
  private readonly views = new Map<string, PeerView>();
  private readonly unreachable = new Set<string>();
  private readonly roundListeners: (() => void)[] = [];
  private removalsCheckedAt = Date.now();
  /** The stamp of each peer item this replica refused, so each refusal is logged once. */
  private readonly refusals = new Map<string, string>();
  private readonly discoveredFromPeers: DeclaredServices;
  /** The Discovered list last declared from a peer, as JSON. */
  private adopted: string | undefined;
  private cached: { readonly key: string; readonly state: ReplicaState } | undefined;
  private running: Promise<unknown> | undefined;
  private synced = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: ReplicationOptions) {
    this.discoveredFromPeers = new DeclaredServices(options.table, options.parseContext, options.log, "a peer's discovered routes");
  }

  /** Ready once the first round asked every peer found (at once when rounds are off). */
  get ready(): boolean {
    return this.synced || this.options.intervalSeconds === 0;
  }

  /** Called after every round (the peers found may have changed). */
  onRound(listener: () => void): void {
    this.roundListeners.push(listener);
  }

  /** Starts the rounds; the first one at once. */
  start(): void {
    if (this.options.intervalSeconds === 0) return;
    void this.round().then(() => {
      this.synced = true;
      this.schedule();
    });
  }

  /** Stops the rounds; resolves once a round under way is over, so nothing changes the tables after. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.round().then(() => this.schedule()), this.options.intervalSeconds * 1000);
    this.timer.unref();
  }

  // --- Changes sent through this replica's API -------------------------------------------------

  /** The stamp of the change an item holds, for passing the change on (distribute=true). */
  stampOf(kind: Kind, name: string): Stamp | undefined {
    return this.options.ledger.get(keyOf(kind, name))?.stamp;
  }

  /** A hand-sent route; `stamp` is set when a peer passed the change on, and an older change is then ignored. */
  upsert(entry: ServiceEntry, stamp?: Stamp): Promise<ChangeOutcome> {
    const name = entry.service.name;
    return this.changeOne('route', name, stamp, () => paramsContent(entry.params), () => this.unchanged(), async () => {
      const before = this.options.table.snapshot().services.get(name);
      const outcome = await this.options.table.upsert(entry);
      if (outcome.ok) await this.stampRoute(name, before, entry.params, stamp);
      return outcome;
    });
  }

  upsertMany(entries: readonly ServiceEntry[]): Promise<BulkOutcome> {
    const names = entries.map((entry) => entry.service.name);
    return this.locks.run(
      names.map((name) => keyOf('route', name)),
      async () => {
        const before = this.options.table.snapshot().services;
        const outcome = await this.options.table.upsertMany(entries);
        if (outcome.ok) for (const entry of entries) await this.stampRoute(entry.service.name, before.get(entry.service.name), entry.params, undefined);
        return outcome;
      },
    );
  }

  remove(name: string, stamp?: Stamp): Promise<ChangeOutcome> {
    return this.changeOne('route', name, stamp, () => '', () => this.unchanged(), () => this.removed('route', name, stamp, this.options.table.remove(name)));
  }

  removeMany(names: readonly string[]): Promise<BulkOutcome> {
    return this.locks.run(
      names.map((name) => keyOf('route', name)),
      async () => {
        const outcome = await this.options.table.removeMany(names);
        if (outcome.ok) {
          const stamp = this.options.ledger.fresh();
          for (const name of new Set(names)) await this.options.ledger.record(keyOf('route', name), stamp, true);
        }
        return outcome;
      },
    );
  }

  /** A certificate sent by hand, or issued by ACME to this replica; `stamp` as for upsert. */
  putCertificate(name: string, pem: string, stamp?: Stamp, source: ReplicatedSource = 'api'): Promise<CertificateOutcome> {
    return this.changeOne('cert', name, stamp, () => pem, () => this.unchangedCertificates(), async () => {
      const outcome = await this.options.certificates.put(name, pem, source);
      if (outcome.ok && (stamp !== undefined || outcome.changed || this.stampOf('cert', name) === undefined)) {
        await this.options.ledger.record(keyOf('cert', name), stamp ?? this.options.ledger.fresh(), false);
      }
      return outcome;
    });
  }

  removeCertificate(name: string, stamp?: Stamp): Promise<CertificateOutcome> {
    return this.changeOne('cert', name, stamp, () => '', () => this.unchangedCertificates(), () => this.removed('cert', name, stamp, this.options.certificates.remove(name)));
  }

  /** A change to one item, under its lock; one a peer passed on is ignored when this replica holds a newer one. */
  private changeOne<O>(kind: Kind, name: string, stamp: Stamp | undefined, content: () => string, unchanged: () => O, change: () => Promise<O>): Promise<O> {
    return this.locks.run([keyOf(kind, name)], async () => (stamp !== undefined && !this.isNewer(kind, name, stamp, content) ? unchanged() : change()));
  }

  /** A removal's outcome, once its tombstone is recorded when it was made. */
  private async removed<O extends { readonly ok: boolean }>(kind: Kind, name: string, stamp: Stamp | undefined, removal: Promise<O>): Promise<O> {
    const outcome = await removal;
    if (outcome.ok) await this.options.ledger.record(keyOf(kind, name), stamp ?? this.options.ledger.fresh(), true);
    return outcome;
  }

  /** A change that repeats the parameters a route holds keeps its stamp, so peers have nothing to do. */
  private async stampRoute(name: string, before: ServiceEntry | undefined, params: Readonly<Record<string, string>>, stamp: Stamp | undefined): Promise<void> {
    const held = this.options.ledger.get(keyOf('route', name));
    const same = before?.source === 'api' && held !== undefined && !held.removed && paramsContent(before.params) === paramsContent(params);
    if (stamp === undefined && same) return;
    await this.options.ledger.record(keyOf('route', name), stamp ?? this.options.ledger.fresh(), false);
  }

  private unchanged(): ChangeOutcome {
    return { ok: true, version: this.options.table.snapshot().version, changed: false };
  }

  private unchangedCertificates(): CertificateOutcome {
    return { ok: true, version: this.options.certificates.snapshot().version, changed: false };
  }

  // --- What this replica holds, for its peers -------------------------------------------------

  state(): ReplicaState {
    const routes = this.options.table.snapshot();
    const certificates = this.options.certificates.snapshot();
    const key = `${routes.version}/${certificates.version}/${this.options.ledger.changes}/${this.options.discovers()}`;
    if (this.cached?.key === key) return this.cached.state;
    const items: ReplicatedItem[] = [];
    const live = new Set<string>();
    for (const [name, entry] of routes.services) {
      if (entry.source !== 'api') continue;
      live.add(keyOf('route', name));
      items.push({ Kind: 'route', Name: name, ...this.liveStamp('route', name), Params: entry.params });
    }
    for (const [name, certificate] of certificates.certificates) {
      if (certificate.source !== 'api' && certificate.source !== 'acme') continue;
      live.add(keyOf('cert', name));
      items.push({ Kind: 'cert', Name: name, ...this.liveStamp('cert', name), Pem: certificate.bundlePem, Source: certificate.source });
    }
    for (const key of this.options.ledger.keys()) {
      const entry = this.options.ledger.get(key);
      if (entry === undefined || !entry.removed || live.has(key)) continue;
      const [kind, name] = splitKey(key);
      items.push({ Kind: kind, Name: name, At: entry.stamp.at, By: entry.stamp.by, Removed: true });
    }
    items.sort((a, b) => (a.Kind + a.Name < b.Kind + b.Name ? -1 : 1));
    const discovers = this.options.discovers();
    const discovered = discovers ? discoveredParams(routes) : [];
    const digest = createHash('sha256').update(JSON.stringify([items, discovered])).digest('hex').slice(0, 32);
    const state: ReplicaState = { Replica: this.options.ledger.replica, Digest: digest, Discovers: discovers, Items: items, Discovered: discovered };
    this.cached = { key, state };
    return state;
  }

  private liveStamp(kind: Kind, name: string): { At: number; By: string } {
    const entry = this.options.ledger.get(keyOf(kind, name));
    const stamp = entry === undefined || entry.removed ? UNSTAMPED : entry.stamp;
    return { At: stamp.at, By: stamp.by };
  }

  // --- Catching up with the peers -------------------------------------------------------------

  /**
   * Asks every peer for what it holds and applies what is newer; then takes discovered routes
   * from a peer if this replica cannot discover them. Resolves with the number of peers found.
   */
  round(): Promise<{ peers: number }> {
    // One round at a time: a round asked for while one runs starts after it, from a fresh lookup.
    // (roundOnce never rejects, so the chain never breaks.)
    const next = (this.running ?? Promise.resolve()).then(() => this.roundOnce());
    this.running = next;
    return next;
  }

  private async roundOnce(): Promise<{ peers: number }> {
    let peers: string[] = [];
    try {
      peers = await this.options.peers.find('to catch up with');
      for (const address of this.views.keys()) if (!peers.includes(address)) this.views.delete(address);
      const views = await Promise.all(peers.map(async (address) => ({ address, view: await this.pull(address) })));
      for (const { address, view } of views) {
        if (view === undefined || view.merged || this.stopped) continue;
        view.merged = await this.merge(address, view.state);
      }
      if (Date.now() - this.removalsCheckedAt > REMOVALS_CHECK_MS) {
        this.removalsCheckedAt = Date.now();
        await this.options.ledger.forgetOldRemovals();
      }
      const reached = views.filter(({ view }) => view !== undefined).length;
      this.options.observer?.round(reached, views.length - reached);
      if (!this.options.discovers() && !this.stopped) await this.adoptDiscovered(views);
    } catch (error) {
      this.options.log.error({ reason: (error as Error).message }, 'catching up with peer replicas failed; trying again next round');
    }
    for (const listener of this.roundListeners) listener();
    return { peers: peers.length };
  }

  private async pull(address: string): Promise<PeerView | undefined> {
    const known = this.views.get(address);
    try {
      const view = await this.fetchView(address, known);
      if (this.unreachable.delete(address)) this.options.log.info({ peer: address }, 'peer replica reached again');
      return view;
    } catch (error) {
      // Logged when a peer stops answering, not at every round while it does not.
      if (!this.unreachable.has(address)) this.options.log.warn({ peer: address, reason: (error as Error).message }, 'peer replica not reached; trying again every round');
      this.unreachable.add(address);
      return undefined;
    }
  }

  private async fetchView(address: string, known: PeerView | undefined): Promise<PeerView> {
    const headers: Record<string, string> = known === undefined ? {} : { 'if-none-match': `"${known.state.Digest}"` };
    const response = await this.options.peers.request(address, { method: 'GET', path: REPLICATION_PATH, headers }, PULL_TIMEOUT_MS);
    if (response.status === 304 && known !== undefined) return known;
    if (response.status === 401) {
      throw new Error('it refuses this replica\'s credentials: every replica of the proxy must have the same API_TOKEN (or API_USER/API_PASS)');
    }
    if (response.status === 403) {
      throw new Error(
        `it answers only replicas it finds in tasks.${this.options.peers.options.serviceName}, which Swarm lists once they are healthy: set API_TOKEN (or API_USER/API_PASS) on the proxy service so replicas can read each other from the start`,
      );
    }
    if (response.status !== 200) throw new Error(`status ${response.status}: ${response.body.slice(0, 200)}`);
    const view = { state: checkedState(jsonOf(response)), merged: false };
    this.views.set(address, view);
    return view;
  }

  /**
   * Applies each newer item; false when some change failed for a reason that may pass (tried
   * again next round). The items are applied together, so the route table makes one version of
   * all the changes that arrive at once (group commit) rather than one per item.
   */
  private async merge(address: string, state: ReplicaState): Promise<boolean> {
    const newer = state.Items.filter((item) => this.isNewer(item.Kind, item.Name, { at: item.At, by: item.By }, () => itemContent(item)));
    const outcomes = await Promise.all(newer.map((item) => this.locks.run([keyOf(item.Kind, item.Name)], () => this.apply(item, { at: item.At, by: item.By }))));
    let complete = true;
    outcomes.forEach((outcome, i) => {
      const item = newer[i] as ReplicatedItem;
      if (outcome.ok) {
        if (outcome.applied) this.options.observer?.change(item.Kind, 'applied');
        return;
      }
      this.options.observer?.change(item.Kind, 'refused');
      if (outcome.status >= 500) complete = false;
      const refusal = `${item.At}@${item.By}`;
      if (this.refusals.get(keyOf(item.Kind, item.Name)) !== refusal) {
        this.options.log.error({ peer: address, [item.Kind === 'route' ? 'service' : 'certificate']: item.Name, reason: outcome.message }, 'a change from a peer replica was refused here');
      }
      this.refusals.set(keyOf(item.Kind, item.Name), refusal);
    });
    return complete;
  }

  private async apply(item: ReplicatedItem, stamp: Stamp): Promise<{ ok: true; applied: boolean } | { ok: false; status: number; message: string }> {
    // Checked again under the lock: a change may have come in while waiting for it.
    if (!this.isNewer(item.Kind, item.Name, stamp, () => itemContent(item))) return { ok: true, applied: false };
    const key = keyOf(item.Kind, item.Name);
    let outcome: ChangeOutcome | CertificateOutcome;
    if (item.Kind === 'route') {
      // A removal takes out the route sent by hand only: a route this replica discovered itself stays.
      if (item.Removed === true) outcome = await this.options.table.remove(item.Name, this.options.listenerFed ? undefined : 'api');
      else {
        const parsed = parseServiceParams(item.Params ?? {}, this.options.parseContext);
        if (!parsed.ok) return { ok: false, status: parsed.error.status, message: parsed.error.message };
        outcome = await this.options.table.upsert({ service: parsed.service, params: parsed.params, source: 'api' });
      }
    } else if (item.Removed === true) {
      outcome = this.holds('cert', item.Name) ? await this.options.certificates.remove(item.Name) : this.unchangedCertificates();
    } else outcome = await this.options.certificates.put(item.Name, item.Pem ?? '', item.Source ?? 'api');
    if (!outcome.ok) return outcome;
    await this.options.ledger.record(key, stamp, item.Removed === true);
    return { ok: true, applied: true };
  }

  /** Whether a change stamped `stamp` is newer than what this replica holds of the item. */
  private isNewer(kind: Kind, name: string, stamp: Stamp, content: () => string): boolean {
    const held = this.heldStamp(kind, name);
    if (held === undefined) return true;
    const order = compareStamps(stamp, held);
    return order > 0 || (order === 0 && content() > this.heldContent(kind, name));
  }

  /** The stamp of what this replica holds of an item; undefined when it knows nothing of it. */
  private heldStamp(kind: Kind, name: string): Stamp | undefined {
    const entry = this.options.ledger.get(keyOf(kind, name));
    if (!this.holds(kind, name)) return entry?.removed === true ? entry.stamp : undefined;
    return entry === undefined || entry.removed ? UNSTAMPED : entry.stamp;
  }

  private holds(kind: Kind, name: string): boolean {
    if (kind === 'route') return this.options.table.snapshot().services.get(name)?.source === 'api';
    const source = this.options.certificates.snapshot().certificates.get(name)?.source;
    return source === 'api' || source === 'acme';
  }

  /** What this replica holds of an item, for ordering equal stamps; '' when it holds none. */
  private heldContent(kind: Kind, name: string): string {
    if (kind === 'route') {
      const entry = this.options.table.snapshot().services.get(name);
      return entry?.source === 'api' ? paramsContent(entry.params) : '';
    }
    return this.holds(kind, name) ? (this.options.certificates.snapshot().certificates.get(name)?.bundlePem ?? '') : '';
  }

  /** A replica that cannot read Swarm routes what a discovering peer discovered: the first such peer, by address, that answered. */
  private async adoptDiscovered(views: readonly { address: string; view: PeerView | undefined }[]): Promise<void> {
    const source = views.find(({ view }) => view?.state.Discovers === true)?.view?.state;
    if (source === undefined) return;
    const json = JSON.stringify(source.Discovered);
    if (json === this.adopted) return;
    await this.discoveredFromPeers.declare(new Map(source.Discovered.map((params) => [params.serviceName ?? '', params])));
    this.adopted = json;
  }
}

function keyOf(kind: Kind, name: string): string {
  return `${kind}:${name}`;
}

function splitKey(key: string): [Kind, string] {
  const colon = key.indexOf(':');
  return [key.slice(0, colon) === 'cert' ? 'cert' : 'route', key.slice(colon + 1)];
}

/** Parameters in a canonical form, to compare two sets. */
function paramsContent(params: Readonly<Record<string, string>>): string {
  return JSON.stringify(Object.keys(params).sort().map((key) => [key, params[key]]));
}

function itemContent(item: ReplicatedItem): string {
  if (item.Removed === true) return '';
  return item.Kind === 'route' ? paramsContent(item.Params ?? {}) : (item.Pem ?? '');
}

function discoveredParams(snapshot: RouteTableSnapshot): Readonly<Record<string, string>>[] {
  return [...snapshot.services.values()].filter((entry) => entry.source === 'swarm').map((entry) => entry.params);
}

/** A peer's answer, checked before any of it is used. */
function checkedState(body: unknown): ReplicaState {
  const state = body as Partial<ReplicaState>;
  const strings = (value: unknown): value is Record<string, string> =>
    typeof value === 'object' && value !== null && Object.values(value).every((v) => typeof v === 'string');
  const item = (value: unknown): value is ReplicatedItem => {
    const i = value as Partial<ReplicatedItem>;
    return (
      (i.Kind === 'route' || i.Kind === 'cert') &&
      typeof i.Name === 'string' &&
      isStamp(i.At, i.By) &&
      (i.Removed === true || (i.Kind === 'route' ? strings(i.Params) : typeof i.Pem === 'string' && (i.Source === 'api' || i.Source === 'acme')))
    );
  };
  if (
    typeof state.Replica !== 'string' ||
    typeof state.Digest !== 'string' ||
    typeof state.Discovers !== 'boolean' ||
    !Array.isArray(state.Items) ||
    !state.Items.every(item) ||
    !Array.isArray(state.Discovered) ||
    !state.Discovered.every(strings)
  ) {
    throw new Error('the answer is not a replica state');
  }
  return state as ReplicaState;
}

/** Runs work holding a lock on each of its keys; work on disjoint keys runs concurrently. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(keys: readonly string[], work: () => Promise<T>): Promise<T> {
    const unique = [...new Set(keys)];
    const before = unique.map((key) => this.tails.get(key));
    let release = () => {};
    const done = new Promise<void>((resolve) => (release = resolve));
    for (const key of unique) this.tails.set(key, done);
    await Promise.all(before);
    try {
      return await work();
    } finally {
      release();
      for (const key of unique) if (this.tails.get(key) === done) this.tails.delete(key);
    }
  }
}
