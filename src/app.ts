/**
 * Wires the pieces: stored routes -> route table -> data plane, and the control API on top.
 */
import { randomUUID } from 'node:crypto';
import { AddressBook } from './addresses/book.js';
import { buildApi } from './api/server.js';
import { PeerDistributor } from './peers/distribute.js';
import type { PeerResult } from './peers/distribute.js';
import { ACME_CHALLENGE_PATH } from './peers/http.js';
import { Ledger } from './peers/ledger.js';
import { Peers } from './peers/peers.js';
import { Replication } from './peers/replication.js';
import { Metrics } from './metrics/metrics.js';
import { AccessLog } from './logs/access-log.js';
import { Dashboard } from './dashboard/dashboard.js';
import { ProblemLog } from './dashboard/problems.js';
import { problemLogOf } from './log.js';
import type { Logger } from './log.js';
import type { RouteTableSnapshot, ServiceEntry } from './routes/model.js';
import { parseServiceParams } from './routes/params.js';
import type { ParseContext } from './routes/params.js';
import type { DataPlane, PlaneKind } from './planes/plane.js';
import type { Settings } from './settings/settings.js';
import { TableStore } from './table/store.js';
import type { LoadedTable, RouteStore } from './table/store.js';
import { RouteTable } from './table/table.js';
import { haproxyInstalled } from './planes/haproxy/process.js';
import { SwarmMirroredStore } from './sources/swarm/config-store.js';
import { pullFromListener } from './sources/listener/pull.js';
import { SwarmDiscovery } from './sources/swarm/discovery.js';
import { SwarmTaskAddresses } from './sources/swarm/tasks.js';
import { swarmRole } from './sources/swarm/role.js';
import { dockerClient } from './sources/swarm/watcher.js';
import { FileCertificateStore, SwarmMirroredCertificateStore } from './tls/cert-store.js';
import type { CertificateStore } from './tls/cert-store.js';
import { CertificateTable } from './tls/certificate-table.js';
import { OnDemandAcme } from './tls/on-demand-acme.js';

export interface FlowProxy {
  readonly settings: Settings;
  readonly plane: DataPlane;
  readonly table: RouteTable;
  readonly certificates: CertificateTable;
  readonly acme: OnDemandAcme;
  readonly api: ReturnType<typeof buildApi>;
  readonly metrics: Metrics;
  readonly replication: Replication;
  /** Port the control API listens on (differs from settings.apiPort only when that is 0). */
  readonly apiPort: number;
  stop(): Promise<void>;
}

/** How this replica authenticates to its peers: they share its API settings. */
function peerAuthorization(settings: Settings): string | undefined {
  if (settings.apiToken !== undefined) return `Bearer ${settings.apiToken}`;
  const basic = settings.apiBasicAuth;
  return basic === undefined ? undefined : `Basic ${Buffer.from(`${basic.user}:${basic.pass}`).toString('base64')}`;
}

export async function choosePlane(settings: Settings): Promise<PlaneKind> {
  if (settings.dataPlane !== 'auto') return settings.dataPlane;
  return (await haproxyInstalled(settings.haproxyBinary)) ? 'haproxy' : 'builtin';
}

async function createPlane(kind: PlaneKind, settings: Settings, book: AddressBook, metrics: Metrics, accessLog: AccessLog | undefined, log: Logger): Promise<DataPlane> {
  if (kind === 'haproxy') {
    if (!(await haproxyInstalled(settings.haproxyBinary))) {
      throw new Error(`--data-plane haproxy: '${settings.haproxyBinary}' cannot be run; install HAProxy (apt-get install haproxy) or use --data-plane builtin`);
    }
    const { HaproxyPlane } = await import('./planes/haproxy/plane.js');
    return new HaproxyPlane(settings, book, metrics, accessLog, log.child({ plane: 'haproxy' }));
  }
  const { BuiltinPlane } = await import('./planes/builtin/plane.js');
  return new BuiltinPlane(settings, book, metrics, accessLog);
}

/**
 * In swarm mode, task addresses come from the Engine API, so a replica is in or out of rotation
 * within a second; while the Engine cannot be reached, DNS (tasks.NAME) answers instead.
 */
async function startTaskAddresses(settings: Settings, log: Logger): Promise<SwarmTaskAddresses> {
  const tasks = new SwarmTaskAddresses(dockerClient(settings.dockerHost), log, { dockerHost: settings.dockerHost });
  await tasks.start().catch((error: Error) => log.error({ reason: error.message }, 'Swarm task addresses not available yet'));
  return tasks;
}

/** Stored parameters are parsed again, so a stored route passes the same validation as a new one. */
function restore(loaded: LoadedTable, context: ParseContext, log: Logger): RouteTableSnapshot {
  const services = new Map<string, ServiceEntry>();
  for (const stored of loaded.services) {
    const parsed = parseServiceParams(stored.params, context);
    if (!parsed.ok) {
      const { users, ...shown } = stored.params;
      log.error({ params: users === undefined ? shown : { ...shown, users: '[hidden]' }, reason: parsed.error.message }, 'stored route is no longer valid; not restored');
      continue;
    }
    services.set(parsed.service.name, { service: parsed.service, params: parsed.params, source: stored.source });
  }
  return { version: loaded.version, services };
}

/** A replica that did not take a challenge may get the validation request: the order then fails and is tried again later. */
function warnUnshared(results: readonly PeerResult[], log: Logger): void {
  const missed = results.filter((result) => result.Status !== 'OK');
  if (missed.length > 0) log.warn({ peers: missed }, 'an ACME challenge did not reach every replica; the order fails if the validation reaches one of them');
}

/** The certificates services ask for with letsencrypt=true: service name -> its exact domains. */
function acmeOrders(snapshot: RouteTableSnapshot): Map<string, string[]> {
  const orders = new Map<string, string[]>();
  for (const [name, { service }] of snapshot.services) {
    if (service.letsencrypt !== true) continue;
    orders.set(name, [...new Set(service.destinations.flatMap((d) => d.domains))]);
  }
  return orders;
}

export async function startFlowProxy(settings: Settings, log: Logger): Promise<FlowProxy> {
  const kind = await choosePlane(settings);
  // A worker's engine refuses every Swarm read: its replica takes discovered routes from its peers.
  const role = settings.mode === 'swarm' ? await swarmRole(dockerClient(settings.dockerHost)) : undefined;
  if (role === 'worker') log.info({}, 'on a Swarm worker: discovered routes come from a replica on a manager, hand-sent ones from every replica');
  const readsSwarm = settings.mode === 'swarm' && role !== 'worker';
  const fileStore = new TableStore(settings.stateDir, {
    onCompactionFailure: (error) => log.error({ reason: error.message }, 'route journal not compacted; every change is still in the journal, retried later'),
  });
  const swarmCopy =
    readsSwarm ? new SwarmMirroredStore(fileStore, dockerClient(settings.dockerHost), settings.serviceName, log.child({ store: 'swarm' })) : undefined;
  const store: RouteStore = swarmCopy ?? fileStore;
  const loaded = await store.load();
  if (loaded.problem !== undefined) log.error(loaded.problem);
  const parseContext: ParseContext = { secretsDir: settings.secretsDir, rawHaproxy: settings.rawHaproxy !== undefined };
  const initial = restore(loaded, parseContext, log);
  const tasks = settings.mode === 'swarm' ? await startTaskAddresses(settings, log.child({ addresses: 'swarm-tasks' })) : undefined;
  const book = new AddressBook({ dnsServers: settings.dnsServers, resolveInterval: settings.resolveInterval, ...(tasks === undefined ? {} : { tasks }), log: log.child({ addresses: true }) });
  const metrics = new Metrics();
  const accessLog = settings.accessLog === undefined ? undefined : new AccessLog(settings.accessLog);
  const plane = await createPlane(kind, settings, book, metrics, accessLog, log);
  const ledger = await Ledger.open(settings.stateDir, randomUUID(), (error) =>
    log.error({ reason: error.message }, 'stamps of hand-sent changes not written to replication.jsonl; replicas still agree, from the stamps held in memory'),
  );
  const release = async () => {
    await ledger.close();
    await plane.stop();
    book.stop();
    tasks?.stop();
    await accessLog?.close();
  };
  const fileCertificates = new FileCertificateStore(settings.stateDir);
  const certificateStore: CertificateStore =
    readsSwarm
      ? new SwarmMirroredCertificateStore(fileCertificates, dockerClient(settings.dockerHost), settings.serviceName, log.child({ store: 'swarm-certs' }))
      : fileCertificates;
  const { table: certificates } = await CertificateTable.load({
    certsDir: settings.certsDir,
    secretsDir: settings.secretsDir,
    stateDir: settings.stateDir,
    store: certificateStore,
    apply: (set) => plane.applyCertificates(set),
    log: log.child({ audit: true, certificates: true }),
  });
  try {
    await plane.start(initial, certificates.snapshot());
  } catch (error) {
    await release().catch(() => undefined); // whatever it had bound
    throw error;
  }
  const table = new RouteTable(initial, store, plane, log.child({ audit: true }));
  const peers = new Peers({
    serviceName: settings.serviceName,
    apiPort: settings.apiPort,
    apiAddress: settings.apiAddress,
    dnsServers: settings.dnsServers,
    authorization: peerAuthorization(settings),
    log: log.child({ peers: true }),
  });
  let discovery: SwarmDiscovery | undefined;
  const replication = new Replication({
    table,
    certificates,
    ledger,
    peers,
    parseContext,
    discovers: () => discovery?.current === true,
    listenerFed: settings.listenerAddress !== undefined,
    intervalSeconds: settings.peerSyncInterval,
    observer: {
      round: (reached, unreached) => {
        metrics.peerReplicas.set({ state: 'reached' }, reached);
        metrics.peerReplicas.set({ state: 'unreached' }, unreached);
      },
      change: (kind, result) => metrics.peerChanges.inc({ kind, result }),
    },
    log: log.child({ peers: true }),
  });
  if (settings.environmentServices.length > 0) {
    // Declared again at every start, like Docker Flow Proxy: the environment wins over what was stored.
    const declared = await replication.upsertMany(settings.environmentServices.map(({ service, params }) => ({ service, params, source: 'api' as const })));
    if (!declared.ok) {
      await release();
      const first = declared.refused[0];
      const prefix = first === undefined ? '' : `${settings.environmentServices[first.index]?.prefix ?? ''}*: `;
      throw new Error(`services declared by DFP_SERVICE_* variables not routed: ${prefix}${first?.message ?? declared.message}`);
    }
  }
  table.onOutcome((source, result, seconds) => metrics.changeAnswered(source, result, seconds));
  metrics.onScrape(() => {
    metrics.certificateExpiry.reset();
    for (const c of certificates.describe()) metrics.certificateExpiry.set({ certificate: c.name }, Date.parse(c.notAfter) / 1000);
  });
  const distributor = new PeerDistributor(peers, log.child({ peers: true }));
  const acme = new OnDemandAcme(
    settings,
    {
      // Before its first round a replica does not know whether another one orders.
      leads: () => settings.peerSyncInterval === 0 || (replication.ready && peers.leads()),
      current: (name) => certificates.snapshot().certificates.get(name),
      issued: (name, bundle) => replication.putCertificate(name, bundle, undefined, 'acme'),
      setChallenge: async (token, value) => {
        await plane.setAcmeChallenge(token, value);
        warnUnshared(await distributor.distribute('PUT', ACME_CHALLENGE_PATH, { token }, undefined, value), log);
      },
      removeChallenge: async (token) => {
        await plane.removeAcmeChallenge(token);
        warnUnshared(await distributor.distribute('DELETE', ACME_CHALLENGE_PATH, { token }, undefined), log);
      },
    },
    log.child({ acme: true }),
  );
  acme.follow(acmeOrders(initial));
  table.onChange((snapshot) => acme.follow(acmeOrders(snapshot)));
  replication.onRound(() => acme.replicasChanged());
  const dashboard = new Dashboard({
    table,
    plane,
    traffic: () => metrics.serviceTraffic(),
    addressesOf: (host) => book.addresses(host),
    settings,
    problems: problemLogOf(log) ?? new ProblemLog(), // a logger made elsewhere: no problems listed
  });
  const api = buildApi({
    credentials: { token: settings.apiToken, basic: settings.apiBasicAuth },
    table,
    certificates,
    acme,
    certsDir: settings.certsDir,
    plane,
    metrics,
    log,
    dashboard,
    parseContext,
    replication,
    peers,
    distributor,
  });
  try {
    await api.listen({ port: settings.apiPort, host: settings.apiAddress });
  } catch (error) {
    dashboard.stop();
    await release();
    throw error;
  }
  // With a Swarm Listener the listener discovers services (as with Docker Flow Proxy).
  discovery =
    readsSwarm && settings.listenerAddress === undefined
      ? new SwarmDiscovery(table, settings.dockerHost, log.child({ source: 'swarm' }), parseContext, () => metrics.discoveryEvents.inc({ source: 'swarm' }))
      : undefined;
  await discovery?.start();
  replication.start();
  const stopPulling = new AbortController();
  if (settings.listenerAddress !== undefined) {
    void pullFromListener(settings.listenerAddress, table, log.child({ source: 'listener' }), stopPulling.signal, parseContext);
  }
  const address = api.server.address();
  const apiPort = typeof address === 'object' && address !== null ? address.port : settings.apiPort;
  log.info(
    { plane: kind, http: settings.httpPort, https: settings.httpsPort, api: apiPort, routes: initial.services.size, certificates: certificates.snapshot().certificates.size, stateDir: settings.stateDir },
    'flow proxy started',
  );
  return {
    settings,
    plane,
    table,
    certificates,
    acme,
    api,
    metrics,
    replication,
    apiPort,
    async stop() {
      acme.stop();
      await replication.stop();
      discovery?.stop();
      stopPulling.abort();
      dashboard.stop();
      await api.close();
      await swarmCopy?.copied(); // the task that replaces this one starts from it
      await release();
    },
  };
}
