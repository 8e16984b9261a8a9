/**
 * Route table -> HAProxy configuration and map files, as pure functions.
 *
 * Routing costs the same whatever the number of services: the frontend holds no per-service
 * ACL, only map lookups (map_beg uses HAProxy's prefix tree, which returns the longest
 * matching prefix). Every value written here comes from the validated route model
 * (src/routes/grammar.ts), validated settings or the address book (IPv4 addresses only), so
 * none can start a new directive.
 *
 * The frontend ("frame") does not depend on the route table, except for the rare routes with
 * conditions and the default backend (frontendRules), so adding, removing or moving a route
 * never needs a reload: routes live in map files changed through the runtime API, and
 * backend servers are added and removed at run time (src/planes/haproxy/plane.ts). A new
 * service is given one of the spare backends rendered ahead of demand when its backend needs
 * no option of its own (its "profile" is the default one).
 *
 * Map files (docs/routing.md has the precedence they implement):
 *   paths.map      PATH BACKEND            routes without a domain
 *   hosts.map      HOSTPATH BACKEND        exact domain + path, and '*.suffix' + path for wildcards
 *   wildcards.map  .SUFFIX *.SUFFIX        most specific first (map_end returns the first match)
 *   redirects.map  OLDHOST NEWHOST         redirectFromDomain
 *   tls.map        BACKEND BACKEND_tls     destinations with an httpsPort, for requests that came over TLS
 *
 * The HTTPS listener loads its certificates from a crt-list (certificates.ts) that is changed
 * through the runtime API; ACME HTTP-01 answers come from acme.map, also changed at run time.
 */
import { createHash } from 'node:crypto';
import type { WantedName } from '../../addresses/model.js';
import { backendHost } from '../../addresses/names.js';
import type { BalanceAlgorithm, Compression, Credential, HeaderRules, Route, RouteTableSnapshot, Service } from '../../routes/model.js';
import { AUTH_REALM, requiredUsers, routesOf, STICKY_COOKIE } from '../../routes/model.js';
import { conditionalOrder, defaultRoute } from '../../routes/match.js';
import { streamListeners } from '../../routes/listeners.js';
import type { StreamListener, StreamTarget, TcpPool } from '../../routes/listeners.js';
import type { Settings } from '../../settings/settings.js';
import { destinationHealth } from '../../health/destination.js';
import type { DestinationHealth } from '../../health/destination.js';

/** services.map names the service of each backend in use, as a JSON string, for the access log (empty when access logs are off). */
export const MAP_FILES = ['paths.map', 'hosts.map', 'wildcards.map', 'redirects.map', 'tls.map', 'services.map'] as const;
export const ACME_MAP = 'acme.map';
export const CRT_LIST = 'certs.list';
export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
export type MapFile = (typeof MAP_FILES)[number];
/** A map's entries in file order: key -> value. */
export type MapEntries = ReadonlyMap<string, string>;

export const NO_ROUTE_BACKEND = 'fp_no_route';
/** Where the operator's error pages are written for HAProxy, under the runtime directory. */
export const ERROR_DIR = 'errors';

const REASONS: Readonly<Record<number, string>> = { 403: 'Forbidden', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

/** An errorfile: the whole HTTP answer HAProxy sends as is. The 404 is served by `http-request return` from the page alone. */
export function errorFile(status: number, page: string): string {
  return `HTTP/1.1 ${status} ${REASONS[status] ?? ''}\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-cache\r\ncontent-length: ${Buffer.byteLength(page)}\r\nconnection: close\r\n\r\n${page}`;
}
export const SPARE_PREFIX = 'fp_spare_';
/** The client address allowedIps/deniedIps check when TRUSTED_PROXIES is set: the source, or the last X-Forwarded-For address a trusted proxy sent. */
const CLIENT_VAR = 'txn.fp_client';
/** X-Forwarded-Proto as the request arrived, for redirectWhenHttpProto. */
const CLIENT_PROTO_VAR = 'txn.fp_client_proto';
const STATS_BACKEND = 'fp_stats';

export interface RenderOptions {
  readonly settings: Settings;
  /** Directory the configuration refers to for map files. */
  readonly mapDir: string;
  /** Directory of what changes only at run time (crt-list, certificates, ACME answers): always the live one. */
  readonly runtimeDir: string;
  /** Directory of the runtime API socket. */
  readonly runDir: string;
}

/** Where servers of a backend come from: the replicas of one destination (or of its TLS port). */
export interface ServerSource {
  readonly service: string;
  readonly destination: number;
  readonly host: WantedName;
  readonly port: number;
  /** Options of each of its server lines (TLS to the replicas, checks), '' for none. */
  readonly serverOptions: string;
  /** Set when the service has a health check: only replicas that pass it get servers. */
  readonly health: DestinationHealth | undefined;
  /** A serviceGroup member's weight, given to each of its servers; undefined elsewhere (HAProxy's default, 1). */
  readonly weight: number | undefined;
}

/** What one destination (or its TLS variant), or one serviceGroup on a port, needs from an HAProxy backend. */
export interface BackendSpec {
  /** be_NAME_INDEX, be_NAME_INDEX_tls for the replicas' TLS port, or tg_GROUP_PORT for a serviceGroup. */
  readonly key: string;
  /** The destination whose traffic the backend carries; undefined for a serviceGroup's, which its members share. */
  readonly owner: { readonly service: string; readonly destination: number } | undefined;
  /** The backend's own directives (redirect, timeouts), one per line: backends with the same profile are interchangeable. */
  readonly profile: string;
  /** One destination's replicas, or those of every member of a serviceGroup. */
  readonly sources: readonly ServerSource[];
  /**
   * Server lines rendered even when unused. Sticky backends get one per task followed
   * (MAX_TASKS): HAProxy gives dynamic cookies only to servers of the configuration, not to
   * servers added at run time.
   */
  readonly slots: number;
}

/** A server a backend has or wants: one address of a source, on the source's port. */
export interface ServerTarget {
  readonly address: string;
  readonly source: ServerSource;
}

export interface RenderedServer {
  readonly name: string;
  /** The options the line is written with; a slot serves only sources with the same. */
  readonly options: string;
  /** undefined: an unused slot, in maintenance until an address is set at run time. */
  readonly target: ServerTarget | undefined;
}

/** ADDRESS:PORT, what tells servers of a backend apart (the members of a serviceGroup may share addresses). */
export function endpointOf(target: ServerTarget): string {
  return `${target.address}:${target.source.port}`;
}

/** What follows a server's ADDRESS:PORT, on its line and in `add server`: its weight in a serviceGroup, then its options. */
export function serverArguments(source: ServerSource): string {
  return `${source.weight === undefined ? '' : ` weight ${source.weight}`}${source.serverOptions === '' ? '' : ` ${source.serverOptions}`}`;
}

/** The servers `spec` needs, given each source's addresses: one per endpoint (a replica two members share is one server). */
export function serverTargets(spec: BackendSpec, addressesOf: (source: ServerSource) => readonly string[] | undefined): ServerTarget[] {
  const targets = new Map<string, ServerTarget>();
  for (const source of spec.sources) {
    for (const address of addressesOf(source) ?? []) {
      const target = { address, source };
      if (!targets.has(endpointOf(target))) targets.set(endpointOf(target), target);
    }
  }
  return [...targets.values()];
}

/** Where an unused slot points: never contacted, since the slot is in maintenance. */
const UNUSED_SLOT_ADDRESS = '127.0.0.1:1';

export interface RenderedBackend {
  readonly name: string;
  readonly profile: string;
  /** The spec this backend serves; undefined for a spare. */
  readonly spec: BackendSpec | undefined;
  /** At least one: a backend always has a slot the first replica's address can be set in. */
  readonly servers: readonly RenderedServer[];
}

export interface RenderedHaproxy {
  /** The whole configuration file. */
  readonly config: string;
  /** Everything but the backends; of the route table, it holds only frontendRules. */
  readonly frame: string;
  readonly backends: ReadonlyMap<string, RenderedBackend>;
  readonly maps: Readonly<Record<MapFile, MapEntries>>;
  /** The lookups the frontend makes. */
  readonly features: Features;
}

export function backendName(service: Service, destinationIndex: number): string {
  return `be_${service.name}_${destinationIndex}`;
}

function tlsBackendName(service: Service, destinationIndex: number): string {
  return `${backendName(service, destinationIndex)}_tls`;
}

/** Group names have a service name's grammar (grammar.ts); the prefix keeps them apart from be_ backends. */
function groupBackendName(group: string, port: number): string {
  return `tg_${group}_${port}`;
}

/** The backend a tcp port's connections go to: its owner's, or its serviceGroup's. */
function tcpBackendName(port: number, pool: TcpPool): string {
  const owner = pool.members[0] as StreamTarget;
  return pool.group === undefined ? backendName(owner.service, owner.destination.index) : groupBackendName(pool.group, port);
}

/** Server names are per backend; an address gets a new name each time it is added, so a draining server never clashes with a new one. */
export function serverName(sequence: number): string {
  return `s${sequence}`;
}

/** Specs per service, computed once per service version: a change to one service among 10,000 does not redo the others. */
const specCache = new WeakMap<Settings, WeakMap<Service, readonly BackendSpec[]>>();

export function specsOf(service: Service, settings: Settings): readonly BackendSpec[] {
  let cache = specCache.get(settings);
  if (cache === undefined) specCache.set(settings, (cache = new WeakMap()));
  const cached = cache.get(service);
  if (cached !== undefined) return cached;
  const host = backendHost(service, settings);
  const slots = service.sticky === true ? settings.maxTasks : 1;
  const checks = serverChecks(service);
  const specs: BackendSpec[] = [];
  for (const destination of service.destinations) {
    // Its replicas are servers of its group's backend (groupSpec).
    if (destination.group !== undefined) continue;
    const key = backendName(service, destination.index);
    const owner = { service: service.name, destination: destination.index };
    const source = { ...owner, host, health: destinationHealth(service, destination, settings.timeouts.connect), weight: undefined };
    specs.push({ key, owner, slots, profile: profileOf(service, settings, false), sources: [{ ...source, port: destination.port, serverOptions: checks }] });
    if (destination.httpsPort !== undefined) {
      const tlsKey = tlsBackendName(service, destination.index);
      const serverOptions = `${tlsToReplicas(service)}${checks === '' ? '' : ` ${checks}`}`;
      specs.push({ key: tlsKey, owner, slots, profile: profileOf(service, settings, true), sources: [{ ...source, port: destination.httpsPort, serverOptions }] });
    }
  }
  cache.set(service, specs);
  return specs;
}

const tableSpecCache = new WeakMap<RouteTableSnapshot, ReadonlyMap<string, BackendSpec>>();

/** The HAProxy backends the table needs, by key, in table order (computed once per table version). */
export function backendSpecs(snapshot: RouteTableSnapshot, settings: Settings): ReadonlyMap<string, BackendSpec> {
  const cached = tableSpecCache.get(snapshot);
  if (cached !== undefined) return cached;
  const specs = new Map<string, BackendSpec>();
  for (const { service } of snapshot.services.values()) for (const spec of specsOf(service, settings)) specs.set(spec.key, spec);
  for (const listener of streamListeners(snapshot, settings.timeouts.client).values()) {
    if (listener.tcp?.group === undefined) continue;
    const spec = groupSpec(listener, listener.tcp, listener.tcp.group, settings);
    specs.set(spec.key, spec);
  }
  tableSpecCache.set(snapshot, specs);
  return specs;
}

/**
 * A serviceGroup's backend on one port: every member's replicas, each server with its member's
 * weight, balanced by balanceGroup. Its timeouts are the longest of the members' (a member
 * without one counts as the default), as the port's timeoutClient.
 */
function groupSpec(listener: StreamListener, pool: TcpPool, group: string, settings: Settings): BackendSpec {
  const services = pool.members.map((member) => member.service);
  const timeoutServer = services.some((service) => service.timeoutServer !== undefined)
    ? Math.max(...services.map((service) => service.timeoutServer ?? settings.timeouts.server))
    : undefined;
  return {
    key: groupBackendName(group, listener.port),
    owner: undefined,
    profile: streamProfile({ timeoutClient: listener.timeoutClientSeconds, timeoutServer, balance: pool.balance }, settings),
    sources: pool.members.map(({ service, destination }) => ({
      service: service.name,
      destination: destination.index,
      host: backendHost(service, settings),
      port: destination.port,
      serverOptions: serverChecks(service),
      health: destinationHealth(service, destination, settings.timeouts.connect),
      weight: destination.group?.weight,
    })),
    slots: 1,
  };
}

/** The profile of a service that sets nothing of its own: the one spare backends have. */
export function defaultProfile(settings: Settings): string {
  return profileOf({ name: 'default', reqMode: 'http', destinations: [] }, settings, false);
}

function profileOf(service: Service, settings: Settings, tls: boolean): string {
  if (service.reqMode !== 'http') return streamProfile(service, settings);
  const lines: string[] = [];
  const redirect = tls ? undefined : renderHttpsRedirect(service, settings);
  if (redirect !== undefined) lines.push(redirect);
  // To HTTPS as the client sees it: the balancer's port, so the Host header is kept as it came.
  if (!tls && service.redirectWhenHttpProto === true) {
    lines.push(`  http-request redirect scheme https code ${service.httpsRedirectCode ?? 302} if !{ ssl_fc } { var(${CLIENT_PROTO_VAR}) -m str http }`);
  }
  // CIDR ranges are checked addresses (grammar.ts).
  const client = settings.trustedProxies === undefined ? 'src' : `var(${CLIENT_VAR}) -m ip`;
  if (service.allowedIps !== undefined) lines.push(`  http-request deny deny_status 403 unless { ${client} ${service.allowedIps.join(' ')} }`);
  if (service.deniedIps !== undefined) lines.push(`  http-request deny deny_status 403 if { ${client} ${service.deniedIps.join(' ')} }`);
  const users = requiredUsers(service, settings.users);
  // The proxy's credentials are its own: the replicas never see them (as Docker Flow Proxy).
  if (users !== undefined) lines.push(`  http-request auth realm "${AUTH_REALM}" unless { http_auth(${userlistName(users)}) }`, '  http-request del-header Authorization');
  if (service.timeoutServer !== undefined) lines.push(`  timeout server ${service.timeoutServer}s`);
  if (service.timeoutTunnel !== undefined) lines.push(`  timeout tunnel ${service.timeoutTunnel}s`);
  if (service.connectionMode !== undefined) lines.push(`  option ${service.connectionMode}`);
  if (service.balance !== undefined && service.balance !== settings.balance) lines.push(`  balance ${service.balance}`);
  if (service.sticky === true) lines.push(`  cookie ${STICKY_COOKIE} insert indirect nocache dynamic`, '  dynamic-cookie-key flow-proxy');
  // The path is a checked path (grammar.ts).
  if (service.healthCheck?.kind === 'http') lines.push(`  option httpchk GET ${service.healthCheck.path}`);
  // A backend's httpclose closes the server side only; this header makes HAProxy close the client's too.
  if (service.connectionMode === 'httpclose') lines.push('  http-after-response set-header Connection close');
  if (service.denyHttp === true) lines.push('  http-request deny deny_status 403 unless { ssl_fc }');
  if (service.allowedMethods !== undefined) lines.push(`  http-request deny deny_status 403 unless { method ${service.allowedMethods.join(' ')} }`);
  if (service.deniedMethods !== undefined) lines.push(`  http-request deny deny_status 403 if { method ${service.deniedMethods.join(' ')} }`);
  if (service.pathRewrites !== undefined) {
    // Search and replace are path characters (grammar.ts): nothing in them is HAProxy syntax.
    for (const { search, replace } of service.pathRewrites) lines.push(`  http-request set-path %[path,regsub(${search},${replace})]`);
    lines.push('  http-request set-path /%[path] unless { path -m beg / }');
  }
  if (service.compression !== undefined) lines.push(...compressionLines(service.compression));
  if (service.requestHeaders !== undefined) lines.push(...headerEdits('http-request', service.requestHeaders));
  if (service.responseHeaders !== undefined) lines.push(...headerEdits('http-response', service.responseHeaders));
  // The operator opted in (ALLOW_RAW_HAPROXY); haproxy -c checks the result before it is used.
  if (service.backendExtra !== undefined) lines.push(...service.backendExtra.map((line) => `  ${line}`));
  return lines.join('\n');
}

/** A tcp or sni backend (of a service, or of a serviceGroup): bytes only, so none of the HTTP options of the defaults apply. */
function streamProfile(own: { readonly timeoutClient?: number; readonly timeoutServer?: number; readonly balance?: BalanceAlgorithm }, settings: Settings): string {
  // Once connected, HAProxy applies the tunnel timeout to both sides: it is the idle limit.
  const lines = ['  mode tcp', '  no option idle-close-on-response', '  no log', `  timeout tunnel ${own.timeoutClient ?? settings.timeouts.client}s`];
  if (own.timeoutServer !== undefined) lines.push(`  timeout server ${own.timeoutServer}s`);
  if (own.balance !== undefined && own.balance !== settings.balance) lines.push(`  balance ${own.balance}`);
  return lines.join('\n');
}

/** Codings and MIME types are checked words (grammar.ts). Without types, the defaults' types (or every type) apply. */
function compressionLines({ algos, types }: Compression): string[] {
  return [`  compression algo ${algos.join(' ')}`, ...(types === undefined ? [] : [`  compression type ${types.join(' ')}`])];
}

/**
 * Named after its content, so a service whose users change gets another profile, and the
 * change reaches HAProxy by a reload rather than leaving the old credentials in force.
 */
function userlistName(users: readonly Credential[]): string {
  return `ul_${createHash('sha256').update(JSON.stringify(users)).digest('hex').slice(0, 16)}`;
}

/**
 * One userlist per set of credentials in use. User names are letters, digits, '_', '.', '@', '-';
 * plain passwords are single-quoted (no "'" inside, grammar.ts), hashes are crypt(3) alphabet.
 */
function renderUserlists(services: readonly Service[], settings: Settings): string {
  const lists = new Map<string, readonly Credential[]>();
  for (const users of [settings.users, ...services.map((service) => requiredUsers(service, settings.users))]) {
    if (users !== undefined) lists.set(userlistName(users), users);
  }
  let text = '';
  for (const [name, users] of lists) {
    const lines = users.map(({ user, password, hashed }) => `  user ${user} ${hashed ? `password ${password}` : `insecure-password '${password}'`}`);
    text += `userlist ${name}\n${lines.join('\n')}\n\n`;
  }
  return text;
}

/** The configuration as shown by /config: passwords and hashes of userlists hidden. */
export function withoutPasswords(config: string): string {
  return config.replace(/^( {2}user \S+ (?:insecure-password|password) ).*$/gm, '$1<hidden>');
}

/**
 * Header names are tokens (grammar.ts); values are literal printable text without "'", written
 * single-quoted (no escape or variable expansion inside) with '%' doubled, since the argument
 * is a log-format string.
 */
function headerEdits(rule: 'http-request' | 'http-response', rules: HeaderRules): string[] {
  const literal = (value: string) => `'${value.replace(/%/g, '%%')}'`;
  return [
    ...rules.del.map((name) => `  ${rule} del-header ${name}`),
    ...rules.set.map(({ name, value }) => `  ${rule} set-header ${name} ${literal(value)}`),
    ...rules.add.map(({ name, value }) => `  ${rule} add-header ${name} ${literal(value)}`),
  ];
}

export interface LayoutInput {
  /** Addresses of a source's host name as the address book has them now (undefined: not resolved yet). */
  readonly addresses: (source: ServerSource) => readonly string[] | undefined;
  /** Spare backends to render besides the ones the table needs. */
  readonly spares: number;
}

/**
 * Spare backends rendered ahead of demand for `used` backends: as many again (the capacity
 * doubles), at least 256, so loading a large table costs a few reloads, not one per batch.
 */
export function spareTarget(used: number): number {
  return Math.max(256, used);
}

/** Below this many free spares, more are rendered (in the background) before they run out. */
export function spareLowWater(used: number): number {
  return Math.max(32, Math.ceil(used / 8));
}

export function renderHaproxy(snapshot: RouteTableSnapshot, options: RenderOptions, layout: LayoutInput): RenderedHaproxy {
  const maps = renderMaps(snapshot, (key) => key, accessLogged(options.settings));
  const features = featuresOf([...snapshot.services.values()].map((entry) => entry.service));
  const frame = renderFrame(options, features, frontendRules(snapshot, options.settings));
  const backends = new Map<string, RenderedBackend>();
  for (const spec of backendSpecs(snapshot, options.settings).values()) {
    const targets = serverTargets(spec, layout.addresses);
    const servers: RenderedServer[] = targets.map((target, i) => ({ name: serverName(i + 1), options: target.source.serverOptions, target }));
    const unusedOptions = spec.sources[0]?.serverOptions ?? '';
    for (let i = servers.length; i < spec.slots; i++) servers.push({ name: serverName(i + 1), options: unusedOptions, target: undefined });
    backends.set(spec.key, { name: spec.key, profile: spec.profile, spec, servers });
  }
  const spareProfile = defaultProfile(options.settings);
  for (let i = 0; i < layout.spares; i++) {
    backends.set(`${SPARE_PREFIX}${i}`, { name: `${SPARE_PREFIX}${i}`, profile: spareProfile, spec: undefined, servers: [{ name: serverName(1), options: '', target: undefined }] });
  }
  const userlists = renderUserlists([...snapshot.services.values()].map((entry) => entry.service), options.settings);
  const config = `# Generated by Flow Proxy from route table version ${snapshot.version}. Do not edit.\n${frame}${userlists}${[...backends.values()].map(renderBackend).join('')}`;
  return { config, frame, backends, maps, features };
}

/** What one service puts in the map files, with `backendOf` naming the HAProxy backend serving a spec key. */
export interface MapContribution {
  readonly entries: readonly (readonly [MapFile, string, string])[];
  /** '.suffix' of each wildcard domain: wildcards.map is made from all services' together. */
  readonly wildcardSuffixes: readonly string[];
}

/** `servicesNamed`: whether services.map is in use (access logs on). */
export function mapContribution(service: Service, backendOf: (key: string) => string, servicesNamed: boolean): MapContribution {
  const entries: [MapFile, string, string][] = [];
  const wildcardSuffixes = new Set<string>();
  const target = service.destinations.flatMap((d) => d.domains)[0];
  if (target !== undefined) for (const from of service.redirectFromDomains ?? []) entries.push(['redirects.map', from, target]);
  // Service names are letters, digits, '_', '.' and '-' (grammar.ts): quoted, they are JSON.
  const serviceJson = `"${service.name}"`;
  for (const destination of service.destinations) {
    // A serviceGroup's backend is shared by its members, and tcp ports are not logged.
    if (destination.group !== undefined) continue;
    const backend = backendOf(backendName(service, destination.index));
    if (servicesNamed) entries.push(['services.map', backend, serviceJson]);
    if (destination.httpsPort !== undefined) {
      const tlsBackend = backendOf(tlsBackendName(service, destination.index));
      entries.push(['tls.map', backend, tlsBackend]);
      if (servicesNamed) entries.push(['services.map', tlsBackend, serviceJson]);
    }
  }
  // Routes with conditions are frontend rules (frontendRules), not map entries.
  for (const route of service.conditions === undefined ? routesOf(service) : []) {
    const backend = backendOf(backendName(service, route.destination.index));
    if (route.domain === null) entries.push(['paths.map', route.path, backend]);
    else {
      entries.push(['hosts.map', `${route.domain}${route.path}`, backend]);
      if (route.domain.startsWith('*.')) wildcardSuffixes.add(route.domain.slice(1));
    }
  }
  return { entries, wildcardSuffixes: [...wildcardSuffixes] };
}

/** wildcards.map from the suffixes in use: most specific first, since map_end returns the first match. */
export function wildcardEntries(suffixes: Iterable<string>): Map<string, string> {
  return new Map([...suffixes].sort((a, b) => b.length - a.length || (a < b ? -1 : 1)).map((suffix) => [suffix, `*${suffix}`] as const));
}

/** The map entries of a table; `backendOf` names the HAProxy backend serving a spec key. */
export function renderMaps(snapshot: RouteTableSnapshot, backendOf: (key: string) => string, servicesNamed: boolean): Record<MapFile, Map<string, string>> {
  const maps = Object.fromEntries(MAP_FILES.map((file) => [file, new Map<string, string>()])) as Record<MapFile, Map<string, string>>;
  const suffixes = new Set<string>();
  for (const { service } of snapshot.services.values()) {
    const contribution = mapContribution(service, backendOf, servicesNamed);
    for (const [file, key, value] of contribution.entries) maps[file].set(key, value);
    for (const suffix of contribution.wildcardSuffixes) suffixes.add(suffix);
  }
  maps['wildcards.map'] = wildcardEntries(suffixes);
  return maps;
}

export function mapText(entries: MapEntries): string {
  let text = '';
  for (const [key, value] of entries) text += `${key} ${value}\n`;
  return text;
}

/**
 * Lookups the frontend makes only when some route needs them, so a table of paths only costs
 * one map lookup per request. A change that needs a lookup the running frontend lacks (the
 * first domain, wildcard, redirect or TLS destination) is applied by a reload; later ones, and
 * removals, are not.
 */
export const FEATURES = ['domains', 'wildcards', 'redirects', 'tls', 'clientProto'] as const;
export type Feature = (typeof FEATURES)[number];
export type Features = Readonly<Record<Feature, boolean>>;

const NO_FEATURES: Features = { domains: false, wildcards: false, redirects: false, tls: false, clientProto: false };

/** The lookups `services` need. */
export function featuresOf(services: Iterable<Service>): Features {
  const needed = { ...NO_FEATURES };
  for (const service of services) {
    for (const destination of service.destinations) {
      if (destination.domains.length > 0) needed.domains = true;
      if (destination.domains.some((domain) => domain.startsWith('*.'))) needed.wildcards = true;
      if (destination.httpsPort !== undefined) needed.tls = true;
    }
    if ((service.redirectFromDomains ?? []).length > 0) needed.redirects = true;
    if (service.redirectWhenHttpProto === true) needed.clientProto = true;
  }
  return needed;
}

/** Whether a frontend with `present` serves what `needed` asks. */
export function covers(present: Features, needed: Features): boolean {
  return FEATURES.every((feature) => present[feature] || !needed[feature]);
}

/**
 * Whether a service is written into the frontend itself, so that a change to it is applied by a
 * reload: routes with conditions (one map lookup cannot test headers) and the default backend.
 */
export function inFrontend(service: Service): boolean {
  return service.conditions !== undefined || service.isDefaultBackend === true || service.reqMode !== 'http';
}

/** What the frontend holds from the table: rules of routes with conditions, in match order, and the default backend. */
export interface FrontendRules {
  readonly conditional: readonly string[];
  readonly fallback: string | undefined;
  /** The frontends of tcp and sni ports. */
  readonly streams: string;
}

export function frontendRules(snapshot: RouteTableSnapshot, settings: Settings): FrontendRules {
  const routes: Route[] = [];
  let fallback: string | undefined;
  for (const { service } of snapshot.services.values()) {
    if (!inFrontend(service)) continue;
    if (service.conditions !== undefined) routes.push(...routesOf(service));
    const route = defaultRoute(service);
    if (route !== undefined) fallback = backendName(service, route.destination.index);
  }
  const streams = [...streamListeners(snapshot, settings.timeouts.client).values()].map((listener) => renderStreamFrontend(listener, settings)).join('');
  return { conditional: routes.sort(conditionalOrder).flatMap(conditionalRule), fallback, streams };
}

/**
 * A tcp port forwards every connection to its service; an sni port waits for the TLS
 * ClientHello and chooses by its server name (checked domains, grammar.ts), closing connections
 * whose name no service has.
 */
function renderStreamFrontend(listener: StreamListener, settings: Settings): string {
  const lines = [
    `frontend ${listener.tcp === undefined ? 'sni' : 'tcp'}_${listener.port}`,
    '  mode tcp',
    '  no option idle-close-on-response',
    '  no log',
    `  bind ${settings.bindAddress}:${listener.port}${acceptProxy(settings, listener.port)}`,
    `  timeout client ${listener.timeoutClientSeconds}s`,
  ];
  // The access log's format (in the defaults) reads HTTP fields, which HAProxy refuses to parse in a tcp frontend.
  if (accessLogged(settings)) lines.push('  option tcplog');
  if (listener.tcp !== undefined) lines.push(`  default_backend ${tcpBackendName(listener.port, listener.tcp)}`);
  else {
    lines.push(`  tcp-request inspect-delay ${settings.timeouts.httpRequest}s`, '  tcp-request content accept if { req.ssl_hello_type 1 }');
    for (const route of listener.sni) {
      const match = route.domain.startsWith('*.') ? `-m end ${route.domain.slice(1)}` : `-m str ${route.domain}`;
      lines.push(`  use_backend ${backendName(route.service, route.destination.index)} if { req.ssl_sni,lower ${match} }`);
    }
  }
  return `${lines.join('\n')}\n\n`;
}

const HOST_SAMPLE = 'req.hdr(host),field(1,:),lower';

/**
 * use_backend rules of one route with conditions. Domains, paths and header names are checked
 * words (grammar.ts); header values and user agents are printable text without quotes or '\',
 * written single-quoted.
 */
function conditionalRule(route: Route): string[] {
  const conditions = route.service.conditions;
  const acls: string[] = [];
  if (route.domain !== null) {
    const match = conditions?.domainMatch ?? (route.domain.startsWith('*.') ? 'end' : 'str');
    acls.push(`{ ${HOST_SAMPLE} -m ${match} ${route.domain.startsWith('*.') ? route.domain.slice(1) : route.domain} }`);
  }
  acls.push(`{ path_beg ${route.path} }`);
  if (conditions !== undefined) {
    if (conditions.excludedPaths.length > 0) acls.push(`!{ path_beg ${conditions.excludedPaths.join(' ')} }`);
    // '--' ends the options: a value may start with '-'.
    for (const { name, value } of conditions.headers) acls.push(`{ req.hdr(${name}) -m str -- '${value}' }`);
    if (conditions.userAgents.length > 0) acls.push(`{ req.fhdr(User-Agent) -m sub -i -- ${conditions.userAgents.map((agent) => `'${agent}'`).join(' ')} }`);
  }
  const backend = backendName(route.service, route.destination.index);
  const tls = route.destination.httpsPort === undefined ? [] : [`  use_backend ${tlsBackendName(route.service, route.destination.index)} if { ssl_fc } ${acls.join(' ')}`];
  return [...tls, `  use_backend ${backend} if ${acls.join(' ')}`];
}

function renderFrame(options: RenderOptions, features: Features, rules: FrontendRules): string {
  return [
    renderGlobal(options),
    renderDefaults(options),
    renderFrontend(options, features, rules),
    rules.streams,
    renderNoRouteBackend(options),
    options.settings.stats === undefined ? '' : renderStatsBackend(options.settings),
  ].join('');
}

function renderGlobal({ runDir, settings }: RenderOptions): string {
  return `global

${settings.haproxyThreads === undefined ? '' : `  nbthread ${settings.haproxyThreads}\n`}  stats socket ${runDir}/admin.sock mode 600 level admin expose-fd listeners
  stats timeout 2m
  tune.ssl.default-dh-param 2048
  hard-stop-after 2m
  # Old workers holding long connections after reloads are bounded in number, not only in time.
  mworker-max-reloads 3
${accessLogged(settings) ? '  log stdout format raw local0 info\n' : ''}${rawLines(settings.rawHaproxy?.extraGlobal)}
`;
}

function rawLines(lines: readonly string[] | undefined): string {
  return (lines ?? []).map((line) => `  ${line}\n`).join('');
}

/**
 * Whether HAProxy writes an access line per request to its standard output, where the control
 * plane reads it (log-stream.ts) for the access log and the request-duration histogram.
 */
export function accessLogged(settings: Settings): boolean {
  return settings.accessLog !== undefined;
}

/**
 * The access line (src/logs/access-log.ts) as HAProxy writes it: client-sent text through the
 * json converter; the time set when the request arrived (date(0,ms) in txn.fp_time); the service
 * from services.map, null for the proxy's own answers. Written for a quoted log-format argument.
 */
export function accessLogFormat(mapDir: string): string {
  const time = '%[var(txn.fp_time),div(1000),utime(%Y-%m-%dT%H:%M:%S)].%[var(txn.fp_time),mod(1000),add(1000),regsub(^1,)]Z';
  const fields = [
    ['time', `"${time}"`],
    ['client', '"%ci"'],
    ['method', '"%HM"'],
    ['host', '"%[capture.req.hdr(0),json(utf8s)]"'],
    ['path', '"%[var(txn.fp_path_logged),json(utf8s)]"'],
    ['service', `%[be_name,map(${mapDir}/services.map,null)]`],
    ['status', '%ST'],
    ['duration_ms', '%Ta'],
    ['bytes_in', '%U'],
    ['bytes_out', '%B'],
  ];
  return `{${fields.map(([name, value]) => `"${name}":${value}`).join(',')}}`.replace(/"/g, '\\"');
}

function renderDefaults({ settings, mapDir, runtimeDir }: RenderOptions): string {
  const { timeouts } = settings;
  const errorFiles = [...settings.errorPages.keys()].filter((status) => status !== 404).map((status) => `  errorfile ${status} ${runtimeDir}/${ERROR_DIR}/${status}.http\n`);
  const compression = settings.compression === undefined ? [] : compressionLines(settings.compression);
  return `defaults
  mode http
${errorFiles.join('')}${compression.map((line) => `${line}\n`).join('')}${accessLogged(settings) ? `  log global\n  option dontlognull\n  log-format "${accessLogFormat(mapDir)}"\n` : ''}  option forwardfor
  balance ${settings.balance}
  # Consistent hashing: balance source keeps working with servers added at run time.
  hash-type consistent
  option idle-close-on-response
  option redispatch 1
  retries 2
  timeout connect ${timeouts.connect}s
  timeout client ${timeouts.client}s
  timeout server ${timeouts.server}s
  timeout queue ${timeouts.queue}s
  timeout tunnel ${timeouts.tunnel}s
  timeout http-request ${timeouts.httpRequest}s
  timeout http-keep-alive ${timeouts.httpKeepAlive}s

`;
}

function renderHttpsBind({ settings, runtimeDir }: RenderOptions): string {
  const { tls } = settings;
  const options = [
    `ssl crt-list ${runtimeDir}/${CRT_LIST}`,
    `alpn ${tls.http2 ? 'h2,http/1.1' : 'http/1.1'}`,
    `ssl-min-ver ${tls.minVersion}`,
    `ssl-max-ver ${tls.maxVersion}`,
    `ciphers ${tls.ciphers}`,
    `ciphersuites ${tls.cipherSuites}`,
  ];
  if (!tls.preferServerCiphers) options.push('prefer-client-ciphers');
  if (!tls.sessionTickets) options.push('no-tls-tickets');
  return `  bind ${settings.bindAddress}:${settings.httpsPort}${acceptProxy(settings, settings.httpsPort)} ${options.join(' ')}`;
}

function acceptProxy(settings: Settings, port: number): string {
  return settings.proxyProtocolPorts.has(port) ? ' accept-proxy' : '';
}

function renderFrontend(options: RenderOptions, needs: Features, rules: FrontendRules): string {
  const { settings, mapDir, runtimeDir } = options;
  const lines = ['frontend http'];
  for (const port of [settings.httpPort, ...settings.extraHttpPorts]) lines.push(`  bind ${settings.bindAddress}:${port}${acceptProxy(settings, port)}`);
  lines.push(renderHttpsBind(options));
  if (settings.trustedProxies !== undefined) {
    // Only a trusted proxy's X-Forwarded-For is kept (option forwardfor appends the source), and
    // only its last address names the client.
    const trusted = `{ src ${settings.trustedProxies.join(' ')} }`;
    lines.push(
      `  http-request del-header X-Forwarded-For unless ${trusted}`,
      `  http-request set-var(${CLIENT_VAR}) src`,
      `  http-request set-var(${CLIENT_VAR}) req.hdr_ip(X-Forwarded-For,-1) if ${trusted} { req.hdr(X-Forwarded-For) -m found }`,
    );
  }
  if (accessLogged(settings)) {
    // Taken as the request arrives: HAProxy may have let the request go when it logs.
    lines.push('  http-request capture req.hdr(host) len 256', '  http-request set-var(txn.fp_time) date(0,ms)', '  http-request set-var(txn.fp_path_logged) path');
  }
  // HAProxy handles Connection itself; these other hop-by-hop headers it would forward.
  lines.push('  http-request del-header Keep-Alive', '  http-request del-header Proxy-Connection', '  http-response del-header Keep-Alive');
  // ACME HTTP-01 answers win over every route and redirect.
  lines.push(
    `  http-request set-var(txn.fp_acme) path,field(4,/),map(${runtimeDir}/${ACME_MAP}) if { path_beg ${ACME_CHALLENGE_PREFIX} }`,
    '  http-request return status 200 content-type text/plain lf-string %[var(txn.fp_acme)] if { var(txn.fp_acme) -m found }',
  );
  if (needs.redirects) {
    lines.push(
      `  http-request set-var(txn.fp_redirect) req.hdr(host),field(1,:),lower,map(${mapDir}/redirects.map)`,
      // Scheme and port stay those of the request; only the host name changes.
      '  http-request redirect code 301 location %[ssl_fc,iif(https,http)]://%[var(txn.fp_redirect)]%[req.hdr(host),regsub(^[^:]*,)]%[pathq] if { var(txn.fp_redirect) -m found }',
    );
  }
  // What a load balancer in front says of the client's protocol, before it is replaced below.
  if (needs.clientProto) lines.push(`  http-request set-var(${CLIENT_PROTO_VAR}) req.hdr(X-Forwarded-Proto),lower if { req.hdr(X-Forwarded-Proto) -m found }`);
  lines.push(
    '  http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]',
    '  http-request set-header X-Forwarded-Port %[dst_port]',
  );
  if (settings.forwardedHeader) {
    // RFC 7239: an IPv6 address is written quoted and bracketed.
    lines.push(
      '  http-request add-header Forwarded for=%[src];proto=%[ssl_fc,iif(https,http)] if { src -m ip 0.0.0.0/0 }',
      '  http-request add-header Forwarded for="[%[src]]";proto=%[ssl_fc,iif(https,http)] unless { src -m ip 0.0.0.0/0 }',
    );
  }
  lines.push('  http-request set-header X-Forwarded-Host %[req.hdr(host)] if { req.hdr(host) -m found }');
  const found = '{ var(txn.fp_backend) -m found }';
  const fallback = rules.fallback ?? NO_ROUTE_BACKEND;
  if (needs.domains) {
    lines.push(
      '  http-request set-var(txn.fp_path) path',
      '  http-request set-var(txn.fp_host) req.hdr(host),field(1,:),lower',
      `  http-request set-var(txn.fp_backend) var(txn.fp_host),concat(,txn.fp_path,),map_beg(${mapDir}/hosts.map)`,
    );
    if (needs.wildcards) {
      lines.push(
        `  http-request set-var(txn.fp_wildcard) var(txn.fp_host),map_end(${mapDir}/wildcards.map) if !${found}`,
        `  http-request set-var(txn.fp_backend) var(txn.fp_wildcard),concat(,txn.fp_path,),map_beg(${mapDir}/hosts.map) if !${found} { var(txn.fp_wildcard) -m found }`,
      );
    }
  }
  if (needs.tls) {
    lines.push(`  http-request set-var(txn.fp_backend) path,map_beg(${mapDir}/paths.map) if !${found}`);
    if (rules.fallback !== undefined) lines.push(`  http-request set-var(txn.fp_backend) str(${rules.fallback}) if !${found}`);
  }
  for (const line of settings.rawHaproxy?.extraFrontend ?? []) lines.push(`  ${line}`);
  // Switching rules: HAProxy runs them after every http-request rule above.
  if (settings.stats !== undefined) lines.push(`  use_backend ${STATS_BACKEND} if { url -m str ${settings.stats.uri} }`);
  lines.push(...rules.conditional);
  if (needs.tls) {
    // Requests that came over TLS go to the replicas' TLS port where the destination has one.
    lines.push(
      `  use_backend %[var(txn.fp_backend),map(${mapDir}/tls.map)] if { ssl_fc } { var(txn.fp_backend),map(${mapDir}/tls.map) -m found }`,
      `  use_backend %[var(txn.fp_backend)] if ${found}`,
    );
  } else {
    if (needs.domains) lines.push(`  use_backend %[var(txn.fp_backend)] if ${found}`);
    lines.push(`  use_backend %[path,map_beg(${mapDir}/paths.map,${fallback})]`);
  }
  lines.push(`  default_backend ${fallback}`);
  return `${lines.join('\n')}\n\n`;
}

function renderNoRouteBackend({ settings, runtimeDir }: RenderOptions): string {
  const answer = settings.errorPages.has(404)
    ? `content-type "text/html; charset=utf-8" file ${runtimeDir}/${ERROR_DIR}/404.html hdr cache-control no-cache`
    : 'content-type text/plain string "no route for this host and path\\n"';
  return `backend ${NO_ROUTE_BACKEND}
  http-request return status 404 ${answer}

`;
}

function renderStatsBackend({ stats }: Settings): string {
  if (stats === undefined) return '';
  return `backend ${STATS_BACKEND}
  stats enable
  stats uri ${stats.uri}
  stats auth ${stats.user}:${stats.pass}
  stats realm Flow\\ Proxy

`;
}

/**
 * HAProxy's own checks on each server, for passive ejection: `fall` failed exchanges in a row
 * (connection errors, timeouts, 5xx but 501/505: observe layer7) take a server out at once, and
 * its checks bring it back. The control plane's
 * probes (src/health) decide which replicas get a server at all.
 */
function serverChecks(service: Service): string {
  const check = service.healthCheck;
  if (check === undefined) return '';
  return `check inter ${check.intervalSeconds}s rise ${check.rise} fall ${check.fall} observe ${service.reqMode === 'http' ? 'layer7' : 'layer4'} error-limit ${check.fall} on-error mark-down`;
}

/** Server options for replicas reached over TLS: verified against the system CAs and the service name unless sslVerifyNone. */
function tlsToReplicas(service: Service): string {
  return service.sslVerifyNone === true ? 'ssl verify none' : `ssl verify required ca-file @system-ca verifyhost ${service.name} sni str(${service.name})`;
}

/** HTTPS redirect for plain-HTTP requests, to the HTTPS port with the same host and path. */
function renderHttpsRedirect(service: Service, settings: Settings): string | undefined {
  if (!(service.httpsOnly ?? settings.httpsOnly)) return undefined;
  const port = settings.httpsPort === 443 ? '' : `:${settings.httpsPort}`;
  return `  http-request redirect location https://%[req.hdr(host),field(1,:)]${port}%[pathq] code ${service.httpsRedirectCode ?? 302} if !{ ssl_fc } { req.hdr(host) -m found }`;
}

function renderBackend(backend: RenderedBackend): string {
  const lines = [`backend ${backend.name}`];
  if (backend.profile !== '') lines.push(backend.profile);
  for (const { name, options, target } of backend.servers) {
    const rest = target === undefined ? `${UNUSED_SLOT_ADDRESS} disabled${options === '' ? '' : ` ${options}`}` : `${endpointOf(target)}${serverArguments(target.source)}`;
    lines.push(`  server ${name} ${rest}`);
  }
  return `${lines.join('\n')}\n\n`;
}
