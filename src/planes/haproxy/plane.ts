/**
 * The HAProxy data plane. Route changes reach the running worker through its runtime API: map
 * entries are added, changed and removed one by one, backend servers are added and drained, and
 * a new destination takes one of the spare backends rendered ahead of demand. HAProxy is
 * reloaded only when no spare fits (the pool ran out, or a destination needs directives of its
 * own), and then renders more spares in the same reload. A reload re-executes the master,
 * which hands the listening sockets to the new worker without refusing a connection.
 *
 * Backend addresses come from the control plane's address book (src/addresses/book.ts), not
 * from HAProxy's resolvers: a replica that starts or stops is added or drained at once.
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AddressBook } from '../../addresses/book.js';
import { backendHost } from '../../addresses/names.js';
import type { Logger } from '../../log.js';
import type { RouteTableSnapshot, Service } from '../../routes/model.js';
import { HealthMonitor } from '../../health/monitor.js';
import { forgetRemoved } from '../../health/destination.js';
import { streamConflict } from '../../routes/listeners.js';
import type { Settings } from '../../settings/settings.js';
import { proxyPorts } from '../../settings/settings.js';
import type { CertificateSet } from '../../tls/model.js';
import { checkChallenge } from '../../tls/challenge.js';
import { certificatePins } from '../../tls/pins.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import type { DataPlane, PlaneStatus } from '../plane.js';
import { PlaneRejection } from '../plane.js';
import { crtListText, renderCrtList, updateCrtList, writeCrtList } from './certificates.js';
import type { CrtList } from './certificates.js';
import { place, specChanges } from './placement.js';
import type { Placement, SpecChanges } from './placement.js';
import { checkConfig, HaproxyCheckFailed, HaproxyProcess } from './process.js';
import { accessLogged, ACME_MAP, ERROR_DIR, errorFile, withoutPasswords, backendSpecs, covers, CRT_LIST, defaultProfile, endpointOf, featuresOf, inFrontend, MAP_FILES, mapContribution, mapText, renderHaproxy, serverTargets, SPARE_PREFIX, spareLowWater, spareTarget, wildcardEntries } from './render.js';
import type { BackendSpec, Features, MapFile, RenderedHaproxy, ServerSource, ServerTarget } from './render.js';
import { replaceMap, runtimeBatch, runtimeCommand, RuntimeApiError } from './runtime.js';
import { parseShowStat, TrafficCounters } from './stats.js';
import type { ProxyCounters } from './stats.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { AccessLog } from '../../logs/access-log.js';
import type { AnsweredRequest } from './log-stream.js';
import { liveServers, mapCommands, retireAll, syncServers } from './servers.js';
import type { LiveBackend, MapEdits, ServerChanges } from './servers.js';

/** A backend of the running worker. */
interface WorkerBackend extends LiveBackend {
  readonly profile: string;
  spec: BackendSpec | undefined;
}

/** What the running worker holds, as changed through the runtime API since it started. */
interface Worker {
  readonly backends: Map<string, WorkerBackend>;
  /** Spec key -> backend name. */
  readonly assigned: Map<string, string>;
  /** Free spares, the next one to take last. */
  readonly free: string[];
  readonly spareProfile: string;
  /** The lookups its frontend makes. */
  readonly features: Features;
  /** Released backends whose counters since they were last read belong to the destination they served. */
  readonly unread: Map<string, BackendSpec>;
  readonly maps: Record<MapFile, Map<string, string>>;
  /** Services with a domain under each wildcard suffix: wildcards.map lists the suffixes in use. */
  readonly wildcardUsers: Map<string, number>;
}

/** How long a change waits for the first lookup of a new backend host before it is served anyway (the servers follow when it answers). */
const FIRST_LOOKUP_MS = 1000;
/** Drained servers still holding connections are deleted later; this often it is tried again. */
const DRAIN_RETRY_MS = 1000;
/**
 * After changes applied at run time, the configuration on disk is brought up to date once no
 * change came for this long, or this long at the latest: a restart that cannot write (full
 * disk) serves it.
 */
const CHECKPOINT_DELAY_MS = 5000;
const CHECKPOINT_LATEST_MS = 60_000;
/** A map changed in more entries than this is replaced as a whole (prepare + commit), atomically. */
const INCREMENTAL_MAP_LIMIT = 200;

export class HaproxyPlane implements DataPlane {
  readonly kind = 'haproxy' as const;
  private readonly liveDir: string;
  private readonly stagingDir: string;
  private readonly runDir: string;
  private readonly process: HaproxyProcess;
  private worker: Worker | undefined;
  private current: RouteTableSnapshot = { version: 0, services: new Map() };
  private lastError: string | undefined;
  private reloads = 0;
  private lastReloadMs = 0;
  private runtimeUpdates = 0;
  private serverUpdates = 0;
  private certificateUpdates = 0;
  private certificates: CertificateSet | undefined;
  /** The crt-list as the running worker holds it (and as written to disk). */
  private crtList: CrtList = new Map();
  private readonly challenges = new Map<string, string>();
  /** backend/server of drained servers HAProxy could not delete yet (connections still open). */
  private readonly draining = new Set<string>();
  private drainTimer: NodeJS.Timeout | undefined;
  private growthScheduled = false;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointDue: number | undefined;
  /** Route, address and certificate changes arrive from three sources; HAProxy sees one at a time. */
  private exclusive: Promise<unknown> = Promise.resolve();

  private readonly traffic: TrafficCounters;

  constructor(
    private readonly settings: Settings,
    private readonly book: AddressBook,
    private readonly metrics: Metrics,
    private readonly accessLog: AccessLog | undefined,
    private readonly log: Logger,
  ) {
    this.traffic = new TrafficCounters(metrics);
    metrics.onScrape(() => this.serialized(() => this.collect()));
    this.liveDir = path.join(settings.stateDir, 'haproxy');
    this.stagingDir = path.join(settings.stateDir, 'haproxy', 'staging');
    this.runDir = path.join(settings.stateDir, 'run');
    this.process = new HaproxyProcess(settings.haproxyBinary, path.join(this.liveDir, 'haproxy.cfg'), this.runDir, log, (line, request) => this.answered(line, request));
    book.onChange((names) => void this.serialized(() => this.followAddresses(names)).catch((error: Error) => this.log.error({ reason: error.message }, 'backend addresses not updated')));
    this.health = new HealthMonitor({
      onChange: () => void this.serialized(() => this.syncAllServers()).catch((error: Error) => this.log.error({ reason: error.message }, 'backend servers not updated after a health change')),
      log: log.child({ health: true }),
    });
  }

  private readonly health: HealthMonitor;

  private render(snapshot: RouteTableSnapshot, mapDir: string): RenderedHaproxy {
    const specs = backendSpecs(snapshot, this.settings);
    return renderHaproxy(
      snapshot,
      { settings: this.settings, mapDir, runtimeDir: this.liveDir, runDir: this.runDir },
      { addresses: (source) => this.wantedAddresses(source), spares: spareTarget(specs.size) },
    );
  }

  private async write(rendered: RenderedHaproxy, dir: string): Promise<string> {
    for (const file of MAP_FILES) await writeFileAtomic(path.join(dir, file), mapText(rendered.maps[file]));
    const configFile = path.join(dir, 'haproxy.cfg');
    await writeFileAtomic(configFile, rendered.config);
    return configFile;
  }

  /** The operator's error pages where the configuration refers to them (fixed for the process's life). */
  private async writeErrorPages(): Promise<void> {
    for (const [status, page] of this.settings.errorPages) {
      const file = path.join(this.liveDir, ERROR_DIR, status === 404 ? '404.html' : `${status}.http`);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFileAtomic(file, status === 404 ? page : errorFile(status, page));
    }
  }

  /** Follows the host names of `services`, and waits (boundedly) for the first lookup of new ones. */
  private async want(services: readonly Service[]): Promise<void> {
    const hosts = services.map((service) => backendHost(service, this.settings));
    for (const host of hosts) this.book.want(host);
    await this.book.settled(hosts.map((host) => host.name), FIRST_LOOKUP_MS);
  }

  private unwant(services: readonly Service[]): void {
    for (const service of services) this.book.unwant(backendHost(service, this.settings).name);
  }

  /** What changes from the table served to `snapshot`, computed once for validate and apply. */
  private changesTo(snapshot: RouteTableSnapshot): SpecChanges {
    const known = this.planned;
    if (known?.from === this.current && known.to === snapshot) return known.changes;
    const changes = specChanges(this.current, snapshot, this.settings);
    this.planned = { from: this.current, to: snapshot, changes };
    return changes;
  }

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.exclusive.then(task, task);
    this.exclusive = run.catch(() => undefined);
    return run;
  }

  private get crtListFile(): string {
    return path.join(this.liveDir, CRT_LIST);
  }

  private get acmeMapFile(): string {
    return path.join(this.liveDir, ACME_MAP);
  }

  private renderCertificates(snapshot: RouteTableSnapshot, certificates: CertificateSet): CrtList {
    return renderCrtList(certificates, certificatePins(snapshot), path.join(this.liveDir, 'certs'));
  }

  private acmeMapText(): string {
    return [...this.challenges].map(([token, value]) => `${token} ${value}\n`).join('');
  }

  async start(initial: RouteTableSnapshot, certificates: CertificateSet): Promise<void> {
    if (this.settings.compression?.algos.includes('br') === true) {
      throw new Error('COMPRESSION_ALGO br: HAProxy 2.6 cannot produce brotli; use gzip or deflate, or run the built-in plane (--data-plane builtin)');
    }
    const refusal = brotliRefusal([...initial.services.values()].map((entry) => entry.service));
    if (refusal !== undefined) throw new Error(refusal);
    this.certificates = certificates;
    await this.want([...initial.services.values()].map((entry) => entry.service));
    const rendered = this.render(initial, this.liveDir);
    try {
      await this.writeErrorPages();
      const crtList = this.renderCertificates(initial, certificates);
      await writeCrtList(crtList, this.crtListFile);
      this.crtList = crtList;
      await writeFileAtomic(this.acmeMapFile, this.acmeMapText());
      await this.check(rendered, this.liveDir);
    } catch (error) {
      if (error instanceof PlaneRejection || !(await this.hasLiveConfig())) throw error;
      // A full disk or read-only state directory must not keep the edge down: serve the last
      // configuration written (atomically) and report the problem; the next change retries.
      this.lastError = `could not write the configuration (${(error as Error).message}); serving the last one written`;
      this.log.error({ reason: (error as Error).message }, 'starting HAProxy from the last configuration written');
      await this.process.start();
      this.current = initial;
      return;
    }
    await this.process.start();
    this.worker = workerOf(rendered, initial, defaultProfile(this.settings));
    this.current = initial;
    await this.syncAllServers();
  }

  private async hasLiveConfig(): Promise<boolean> {
    return readFile(path.join(this.liveDir, 'haproxy.cfg'), 'utf8').then(
      (text) => text.startsWith('# Generated by Flow Proxy'),
      () => false,
    );
  }

  /** Writes `rendered` into `dir` and runs `haproxy -c` on it. */
  private async check(rendered: RenderedHaproxy, dir: string): Promise<void> {
    const configFile = await this.write(rendered, dir);
    try {
      await checkConfig(this.settings.haproxyBinary, configFile);
    } catch (error) {
      if (!(error instanceof HaproxyCheckFailed)) throw error;
      this.metrics.validationFailures.inc();
      throw new PlaneRejection(`haproxy -c: ${error.message}`);
    }
  }

  /** The last plan made, kept because the table validates then applies the same candidate. */
  private planned: { readonly from: RouteTableSnapshot; readonly to: RouteTableSnapshot; readonly changes: SpecChanges } | undefined;

  private placement(snapshot: RouteTableSnapshot): { changes: SpecChanges; placement: Placement } | undefined {
    const worker = this.worker;
    if (worker === undefined || !this.process.running) return undefined;
    const changes = this.changesTo(snapshot);
    // A lookup the running frontend does not make (the first domain, ...) needs a reload.
    if (!covers(worker.features, featuresOf(changes.came))) return undefined;
    // Routes with conditions and the default backend are frontend rules, not map entries.
    if (changes.came.some(inFrontend) || changes.gone.some(inFrontend)) return undefined;
    return { changes, placement: place(changes, worker.backends, worker.assigned, worker.free, worker.spareProfile) };
  }

  /**
   * A change the running worker can take through the runtime API holds only validated names,
   * paths and addresses, and needs no check; one that needs a reload is checked with
   * `haproxy -c` first.
   */
  async validate(candidate: RouteTableSnapshot): Promise<void> {
    const conflict = streamConflict(candidate, proxyPorts(this.settings));
    if (conflict !== undefined) throw new PlaneRejection(conflict);
    const refusal = brotliRefusal(this.changesTo(candidate).came);
    if (refusal !== undefined) throw new PlaneRejection(refusal);
    const planned = this.placement(candidate);
    if (planned !== undefined && planned.placement.unplaced.length === 0) return;
    await this.check(this.render(candidate, this.stagingDir), this.stagingDir);
  }

  apply(snapshot: RouteTableSnapshot): Promise<void> {
    return this.serialized(async () => {
      const changes = this.changesTo(snapshot);
      // Addresses of new hosts are looked up first; hosts of services gone are dropped once served.
      await this.want(changes.came);
      try {
        const planned = this.placement(snapshot);
        const crtList = this.certificates === undefined ? this.crtList : this.renderCertificates(snapshot, this.certificates);
        if (planned !== undefined && planned.placement.unplaced.length === 0) {
          await this.applyAtRunTime(planned.changes, planned.placement).catch((error: unknown) => {
            // What the worker holds is no longer known: the next change renders everything again.
            this.worker = undefined;
            throw error;
          });
          await this.updateCertificates(crtList);
        } else {
          await this.writeCertificates(crtList);
          await this.reloadWith(snapshot);
        }
        forgetRemoved(this.health, this.current, snapshot);
        this.current = snapshot;
        this.lastError = undefined;
      } catch (error) {
        this.unwant(changes.came);
        this.lastError = (error as Error).message;
        throw error;
      }
      this.unwant(changes.gone);
      this.growSparesIfLow();
    });
  }

  private async applyAtRunTime(specs: SpecChanges, placement: Placement): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) throw new Error('no running worker');
    const changes: ServerChanges[] = [];
    // What a released backend answered until now belongs to the service it served: it is read at
    // the next scrape or, if the backend is given to another service first, in that change's batch.
    const unreadReused = [...placement.assign.values()].filter((name) => worker.unread.has(name));
    const servedBefore = new Map(unreadReused.map((name) => [name, worker.unread.get(name)] as const));
    for (const name of placement.release) {
      const backend = worker.backends.get(name);
      if (backend === undefined) continue;
      changes.push(retireAll(backend));
      if (backend.spec !== undefined) worker.unread.set(name, backend.spec);
      backend.spec = undefined;
    }
    for (const [key, name] of placement.assign) {
      const backend = worker.backends.get(name);
      const spec = specs.added.get(key);
      if (backend === undefined || spec === undefined) continue;
      if (backend.spec !== undefined && !sameTarget(backend.spec, spec)) changes.push(retireAll(backend));
      backend.spec = spec;
      changes.push(syncServers(backend, this.wantedServers(spec)));
    }
    const assignedAfter = (key: string) => placement.assign.get(key) ?? worker.assigned.get(key) ?? key;
    const edits = this.mapEditsTo(specs, (key) => worker.assigned.get(key) ?? key, assignedAfter);
    const incremental: string[] = [];
    const replaced: MapFile[] = [];
    for (const file of MAP_FILES) {
      const fileEdits = edits[file];
      if (fileEdits.size === 0) continue;
      // map_end returns the first match: wildcard suffixes keep their order only in a full replace.
      if (file === 'wildcards.map' || fileEdits.size > INCREMENTAL_MAP_LIMIT) {
        mapCommands('', worker.maps[file], fileEdits);
        replaced.push(file);
      } else incremental.push(...mapCommands(path.join(this.liveDir, file), worker.maps[file], fileEdits));
    }
    const statCommands = unreadReused.map((name) => `show stat ${name} 2 -1`);
    const after = changes.flatMap((c) => c.retire);
    // One exchange with HAProxy in the usual case; what follows map edits waits for whole-map replacements.
    const stats = await this.run([...statCommands, ...changes.flatMap((c) => c.add), ...incremental, ...(replaced.length === 0 ? after : [])], statCommands.length);
    this.recordTraffic(stats, (name) => servedBefore.get(name));
    for (const name of unreadReused) worker.unread.delete(name);
    for (const file of replaced) await replaceMap(this.process.adminSocket, path.join(this.liveDir, file), mapText(worker.maps[file]));
    if (replaced.length > 0 && after.length > 0) await this.run(after);
    for (const key of specs.removed.keys()) if (!placement.assign.has(key)) worker.assigned.delete(key);
    for (const [key, name] of placement.assign) worker.assigned.set(key, name);
    worker.free.length -= placement.taken;
    // Released spares are taken again last, so their counters are usually read by a scrape first.
    const reusable = placement.release.filter((name) => worker.backends.get(name)?.profile === worker.spareProfile && name.startsWith(SPARE_PREFIX));
    if (reusable.length > 0) worker.free.unshift(...reusable);
    await this.drain(changes);
    this.runtimeUpdates++;
    if (changes.some((c) => c.add.length > 0 || c.retire.length > 0)) this.serverUpdates++;
    this.scheduleCheckpoint();
  }

  /**
   * Writes the configuration a reload would render for the table served now. HAProxy reads it
   * only when (re)started, so the running worker is not disturbed.
   */
  private scheduleCheckpoint(): void {
    // Rendering 10,000 services takes the event loop for a while: wait for a quiet moment.
    const now = Date.now();
    this.checkpointDue ??= now + CHECKPOINT_LATEST_MS;
    clearTimeout(this.checkpointTimer);
    this.checkpointTimer = setTimeout(() => void this.checkpoint(), Math.max(0, Math.min(CHECKPOINT_DELAY_MS, this.checkpointDue - now)));
    this.checkpointTimer.unref();
  }

  private checkpoint(): Promise<void> {
    clearTimeout(this.checkpointTimer);
    this.checkpointTimer = undefined;
    this.checkpointDue = undefined;
    return this.serialized(() => this.write(this.render(this.current, this.liveDir), this.liveDir)).then(
      () => undefined,
      (error: Error) => this.log.warn({ reason: error.message }, 'configuration on disk not brought up to date; a restart renders it again'),
    );
  }

  /**
   * Map entries that change with `specs`: those of the services that changed only, so the work
   * does not grow with the table.
   */
  private mapEditsTo(specs: SpecChanges, before: (key: string) => string, after: (key: string) => string): Record<MapFile, MapEdits> {
    const worker = this.worker;
    const edits = Object.fromEntries(MAP_FILES.map((file) => [file, new Map()])) as Record<MapFile, MapEdits>;
    if (worker === undefined) return edits;
    let suffixesChanged = false;
    const count = (suffixes: readonly string[], by: number) => {
      for (const suffix of suffixes) {
        const users = (worker.wildcardUsers.get(suffix) ?? 0) + by;
        if (users === 0 || users === by) suffixesChanged = true;
        if (users === 0) worker.wildcardUsers.delete(suffix);
        else worker.wildcardUsers.set(suffix, users);
      }
    };
    for (const service of specs.gone) {
      const gone = mapContribution(service, before, accessLogged(this.settings));
      for (const [file, key] of gone.entries) edits[file].set(key, undefined);
      count(gone.wildcardSuffixes, -1);
    }
    for (const service of specs.came) {
      const added = mapContribution(service, after, accessLogged(this.settings));
      for (const [file, key, value] of added.entries) edits[file].set(key, value);
      count(added.wildcardSuffixes, 1);
    }
    if (suffixesChanged) {
      const wildcards = wildcardEntries(worker.wildcardUsers.keys());
      for (const key of worker.maps['wildcards.map'].keys()) if (!wildcards.has(key)) edits['wildcards.map'].set(key, undefined);
      for (const [key, value] of wildcards) edits['wildcards.map'].set(key, value);
    }
    return edits;
  }

  private wantedAddresses(source: ServerSource): readonly string[] {
    const addresses = this.book.addresses(source.host.name)?.slice(0, source.host.limit) ?? [];
    const { health } = source;
    return health === undefined ? addresses : this.health.healthy(health.key, health.check, health.port, addresses);
  }

  private wantedServers(spec: BackendSpec): ServerTarget[] {
    return serverTargets(spec, (source) => this.wantedAddresses(source));
  }

  /**
   * Runs runtime API commands; any answer but the expected ones is an error. The first `reads`
   * commands read something (show ...): their answers are returned.
   */
  private async run(commands: readonly string[], reads = 0): Promise<string[]> {
    const answers = await runtimeBatch(this.process.adminSocket, commands);
    answers.forEach((answer, i) => {
      if (i < reads || answer === '' || answer === 'New server registered.' || answer.startsWith('no need to change the addr')) return;
      if (/^(IP|port) changed from/.test(answer) || /changed from '.*' to '.*' by 'stats socket command'/.test(answer)) return;
      throw new RuntimeApiError(`${(commands[i] ?? '').split('\n')[0]}: ${answer}`);
    });
    return answers.slice(0, reads);
  }

  /** Servers stop taking new requests at once (in-flight ones finish); those added at run time are deleted when their last connection ends. */
  private async retire(changes: readonly ServerChanges[]): Promise<void> {
    const commands = changes.flatMap((c) => c.retire);
    if (commands.length === 0) return;
    await this.run(commands);
    await this.drain(changes);
  }

  private async drain(changes: readonly ServerChanges[]): Promise<void> {
    for (const change of changes) for (const server of change.drain) this.draining.add(server);
    await this.deleteDrained();
  }

  private async deleteDrained(): Promise<void> {
    if (this.draining.size === 0 || !this.process.running) return;
    const servers = [...this.draining];
    const answers = await runtimeBatch(this.process.adminSocket, servers.map((server) => `del server ${server}`));
    servers.forEach((server, i) => {
      // "Server deleted." or, after a reload, the server no longer exists: either way it is gone.
      if (answers[i] === 'Server deleted.' || /No such (server|backend)|Unknown/i.test(answers[i] ?? '')) this.draining.delete(server);
    });
    if (this.draining.size > 0 && this.drainTimer === undefined) {
      this.drainTimer = setTimeout(() => {
        this.drainTimer = undefined;
        void this.serialized(() => this.deleteDrained()).catch(() => undefined);
      }, DRAIN_RETRY_MS);
      this.drainTimer.unref();
    }
  }

  /** Addresses of some hosts changed: servers follow, with no reload. */
  private async followAddresses(names: ReadonlySet<string>): Promise<void> {
    const worker = this.worker;
    if (worker === undefined || !this.process.running) return;
    const changes: ServerChanges[] = [];
    for (const backend of worker.backends.values()) {
      const spec = backend.spec;
      if (spec === undefined || !spec.sources.some((source) => names.has(source.host.name))) continue;
      changes.push(syncServers(backend, this.wantedServers(spec)));
    }
    if (!changes.some((c) => c.add.length > 0 || c.retire.length > 0)) return;
    await this.run(changes.flatMap((c) => c.add));
    await this.retire(changes);
    this.serverUpdates++;
  }

  /** An access line from HAProxy: its duration for the histogram, the line for the access log. */
  private answered(line: string, { service, durationMs }: AnsweredRequest): void {
    if (service !== undefined) this.metrics.durations(service).took(durationMs / 1000);
    this.accessLog?.writeLine(line);
  }

  /** Counts read from HAProxy for every backend, added to the services they serve; returns the frontend's. */
  private async countTraffic(): Promise<ProxyCounters | undefined> {
    const worker = this.worker;
    if (worker === undefined || !this.process.running) return undefined;
    const stats = this.recordTraffic([await runtimeCommand(this.process.adminSocket, 'show stat -1 3 -1', 30_000)], (name) => worker.backends.get(name)?.spec ?? worker.unread.get(name));
    worker.unread.clear();
    return stats.get('frontend:http');
  }

  private recordTraffic(answers: readonly string[], specOf: (backend: string) => BackendSpec | undefined): Map<string, ProxyCounters> {
    const stats = new Map<string, ProxyCounters>();
    for (const answer of answers) for (const [name, counters] of parseShowStat(answer)) stats.set(name, counters);
    this.traffic.record(stats, (name) => specOf(name)?.owner);
    return stats;
  }

  private async collect(): Promise<void> {
    const frontend = await this.countTraffic();
    if (frontend !== undefined) this.metrics.connections.set(frontend.current);
    this.metrics.replicas.reset();
    for (const backend of this.worker?.backends.values() ?? []) {
      const spec = backend.spec;
      if (spec === undefined || spec.key.endsWith('_tls')) continue;
      // A serviceGroup's backend holds the replicas of several destinations.
      const live = liveServers(backend).map(({ target }) => target.source);
      for (const { service, destination } of spec.sources) {
        const inRotation = live.filter((source) => source.service === service && source.destination === destination).length;
        this.metrics.replicas.set({ service, destination: String(destination) }, inRotation);
      }
    }
  }

  /** After a reload, addresses that changed while the configuration was rendered are caught up. */
  private async syncAllServers(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) return;
    const names = new Set<string>();
    for (const backend of worker.backends.values()) for (const source of backend.spec?.sources ?? []) names.add(source.host.name);
    await this.followAddresses(names);
  }

  /** Renders every destination its own backend plus fresh spares, and reloads. */
  private async reloadWith(snapshot: RouteTableSnapshot): Promise<void> {
    const started = Date.now();
    const rendered = this.render(snapshot, this.liveDir);
    await this.write(rendered, this.liveDir);
    // The new worker counts from zero: what the old one counted is taken first.
    await this.countTraffic().catch((error: Error) => this.log.warn({ reason: error.message }, 'traffic counters not read before the reload'));
    try {
      await this.restartOrReload();
    } catch (error) {
      this.metrics.reloaded(false, 0);
      throw error;
    }
    this.metrics.reloaded(true, (Date.now() - started) / 1000);
    this.traffic.restarted();
    this.worker = workerOf(rendered, snapshot, defaultProfile(this.settings));
    // The new worker has only the servers written in its configuration.
    this.draining.clear();
    this.lastReloadMs = Date.now() - started;
    this.log.info({ backends: rendered.backends.size, ms: this.lastReloadMs }, 'haproxy reloaded');
    await this.syncAllServers();
  }

  /** More spares are rendered in the background, before a change finds none. */
  private growSparesIfLow(): void {
    const worker = this.worker;
    if (worker === undefined || this.growthScheduled) return;
    if (worker.free.length >= spareLowWater(worker.assigned.size)) return;
    this.growthScheduled = true;
    void this.serialized(async () => {
      this.growthScheduled = false;
      await this.reloadWith(this.current);
    }).catch((error: Error) => this.log.error({ reason: error.message }, 'spare backends not added; the next change that needs one reloads'));
  }

  applyCertificates(certificates: CertificateSet): Promise<void> {
    return this.serialized(async () => {
      this.certificates = certificates;
      await this.updateCertificates(this.renderCertificates(this.current, certificates));
    });
  }

  private async writeCertificates(crtList: CrtList): Promise<void> {
    await writeCrtList(crtList, this.crtListFile, this.crtList);
    this.crtList = crtList;
  }

  /** Through the runtime API when HAProxy takes it; otherwise a reload from the files. */
  private async updateCertificates(crtList: CrtList): Promise<void> {
    const loaded = this.crtList;
    if (sameCrtList(loaded, crtList)) return;
    if (!this.process.running) {
      await this.writeCertificates(crtList);
      return;
    }
    try {
      if (await updateCrtList(this.process.adminSocket, this.crtListFile, loaded, crtList)) this.certificateUpdates++;
      await this.writeCertificates(crtList);
    } catch (error) {
      this.log.warn({ reason: (error as Error).message }, 'certificates changed by a reload: the runtime API did not take the change');
      await this.writeCertificates(crtList);
      await this.restartOrReload();
    }
  }

  setAcmeChallenge(token: string, keyAuthorization: string): Promise<void> {
    checkChallenge(token, keyAuthorization);
    return this.serialized(async () => {
      this.challenges.set(token, keyAuthorization);
      await this.writeChallenges();
    });
  }

  removeAcmeChallenge(token: string): Promise<void> {
    return this.serialized(async () => {
      if (this.challenges.delete(token)) await this.writeChallenges();
    });
  }

  private async writeChallenges(): Promise<void> {
    const text = this.acmeMapText();
    await writeFileAtomic(this.acmeMapFile, text);
    if (this.process.running) await replaceMap(this.process.adminSocket, this.acmeMapFile, text);
  }

  private async restartOrReload(): Promise<void> {
    if (this.process.running) {
      await this.process.reload();
      this.reloads++;
    } else {
      this.log.error('haproxy was not running; starting it again');
      await this.process.start();
    }
  }

  reload(): Promise<void> {
    return this.serialized(() => this.reloadWith(this.current));
  }

  status(): PlaneStatus {
    const worker = this.worker;
    const spares = worker?.free.length ?? 0;
    return {
      kind: this.kind,
      ready: this.process.running,
      version: this.current.version,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
      details: {
        reloads: this.reloads,
        lastReloadMs: this.lastReloadMs,
        runtimeUpdates: this.runtimeUpdates,
        serverUpdates: this.serverUpdates,
        certificateUpdates: this.certificateUpdates,
        spareBackends: spares,
        drainingServers: this.draining.size,
      },
    };
  }

  async describe(): Promise<string> {
    const parts = [`# ---- configuration of the last reload (backends and maps change at run time: see below) ----\n${withoutPasswords(await readFile(path.join(this.liveDir, 'haproxy.cfg'), 'utf8'))}`];
    const worker = this.worker;
    if (worker !== undefined) {
      for (const file of MAP_FILES) parts.push(`# ---- map ${file} as served ----\n${mapText(worker.maps[file])}`);
      const lines: string[] = [];
      for (const backend of worker.backends.values()) {
        if (backend.spec === undefined) continue;
        const servers = liveServers(backend).map(({ name, target }) => `  server ${name} ${endpointOf(target)}`);
        lines.push(`backend ${backend.spec.key}${backend.name === backend.spec.key ? '' : ` (HAProxy backend ${backend.name})`}`, ...(servers.length === 0 ? ['  # no replica'] : servers));
      }
      parts.push(`# ---- backends and their servers as served ----\n${lines.join('\n')}\n`);
    }
    parts.push(`# ---- crt-list ${this.crtListFile} ----\n${crtListText(this.crtList)}`);
    return parts.join('\n');
  }

  async stop(): Promise<void> {
    this.health.stop();
    if (this.drainTimer !== undefined) clearTimeout(this.drainTimer);
    if (this.checkpointTimer !== undefined) await this.checkpoint();
    await this.process.stop(this.settings.stopGrace);
  }
}

/** Why HAProxy cannot serve one of `services`: it asks for brotli. */
function brotliRefusal(services: readonly Service[]): string | undefined {
  const asking = services.find((service) => service.compression?.algos.includes('br') === true);
  if (asking === undefined) return undefined;
  return `service ${asking.name} asks for compressionAlgo br: HAProxy 2.6 cannot produce brotli; use gzip or deflate, or run the built-in plane (--data-plane builtin)`;
}

function countWildcardUsers(snapshot: RouteTableSnapshot): Map<string, number> {
  const users = new Map<string, number>();
  for (const { service } of snapshot.services.values()) {
    for (const suffix of mapContribution(service, (key) => key, false).wildcardSuffixes) users.set(suffix, (users.get(suffix) ?? 0) + 1);
  }
  return users;
}

function workerOf(rendered: RenderedHaproxy, snapshot: RouteTableSnapshot, spareProfile: string): Worker {
  const backends = new Map<string, WorkerBackend>();
  const assigned = new Map<string, string>();
  for (const [name, backend] of rendered.backends) {
    backends.set(name, {
      name,
      profile: backend.profile,
      spec: backend.spec,
      slots: backend.servers.map((server) => ({ ...server })),
      added: new Map(),
      nextServer: backend.servers.length + 1,
    });
    if (backend.spec !== undefined) assigned.set(backend.spec.key, name);
  }
  const free = [...rendered.backends.values()].filter((b) => b.spec === undefined && b.name.startsWith(SPARE_PREFIX)).map((b) => b.name).reverse();
  const maps = {} as Record<MapFile, Map<string, string>>;
  for (const file of MAP_FILES) maps[file] = new Map(rendered.maps[file]);
  return { backends, assigned, free, spareProfile, maps, features: rendered.features, unread: new Map(), wildcardUsers: countWildcardUsers(snapshot) };
}

function sameCrtList(a: CrtList, b: CrtList): boolean {
  if (crtListText(a) !== crtListText(b)) return false;
  for (const [file, entry] of b) if (a.get(file)?.bundle !== entry.bundle) return false;
  return true;
}

/** Whether servers of `a` can stay as they are for `b`. */
function sameTarget(a: BackendSpec, b: BackendSpec): boolean {
  const sameSource = (x: ServerSource, y: ServerSource | undefined) =>
    y !== undefined && x.port === y.port && x.serverOptions === y.serverOptions && x.weight === y.weight && x.host.name === y.host.name;
  return a.key === b.key && a.sources.length === b.sources.length && a.sources.every((source, i) => sameSource(source, b.sources[i]));
}
