/**
 * Every setting in one typed object, from flags first and environment variables second
 * (Docker Flow Proxy's names where one exists), validated once at start-up.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import path from 'node:path';
import type { AccessLogDestination } from '../logs/access-log.js';
import { environmentServices, EnvironmentServiceError } from '../sources/environment/services.js';
import type { EnvironmentService } from '../sources/environment/services.js';
import type { AddressMode, BalanceAlgorithm, Compression, Credential } from '../routes/model.js';
import { BALANCE_ALGORITHMS } from '../routes/model.js';
import { InvalidValue, parseCidr, parseCompressionAlgos, parseCredentials, parseList, parseMimeTypes, parseRawHaproxy } from '../routes/grammar.js';
import type { ParseContext } from '../routes/params.js';
import type { TlsSettings } from '../tls/model.js';

export type DataPlaneChoice = 'auto' | 'haproxy' | 'builtin';

export interface Timeouts {
  /** All in seconds, as Docker Flow Proxy's TIMEOUT_* variables. */
  readonly connect: number;
  readonly client: number;
  readonly server: number;
  readonly queue: number;
  readonly tunnel: number;
  readonly httpRequest: number;
  readonly httpKeepAlive: number;
}

export interface StatsSettings {
  readonly user: string;
  readonly pass: string;
  readonly uri: string;
}

/** ACME (RFC 8555) certificates, for services that ask with letsencrypt=true. */
export interface AcmeSettings {
  readonly directoryUrl: string;
  readonly email: string | undefined;
  /** PEM bundle of CAs trusted for the ACME server's own HTTPS (a private ACME server). */
  readonly caFile: string | undefined;
  readonly renewBeforeDays: number;
}

export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

/** Mozilla's "intermediate" TLS 1.2 ciphers (server side guidelines 5.7). */
export const INTERMEDIATE_CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305';
export const TLS13_CIPHERSUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

export interface Settings {
  readonly httpPort: number;
  readonly httpsPort: number;
  readonly tls: TlsSettings;
  /** PEM bundles served as certificates (Docker Flow Proxy's /certs); undefined: none. */
  readonly certsDir: string | undefined;
  /** Where Docker secrets are mounted; secrets named cert-* or cert_* are certificates. */
  readonly secretsDir: string;
  /** Redirect every HTTP request to HTTPS (per service: httpsOnly). */
  readonly httpsOnly: boolean;
  readonly acme: AcmeSettings;
  /** Extra ports the HTTP frontend also listens on (Docker Flow Proxy's BIND_PORTS). */
  readonly extraHttpPorts: readonly number[];
  /** Address the traffic ports listen on. */
  readonly bindAddress: string;
  readonly apiPort: number;
  readonly apiAddress: string;
  /** When set, every API endpoint but ping and status needs `Authorization: Bearer <token>` (or the basic credentials). */
  readonly apiToken: string | undefined;
  readonly apiBasicAuth: { readonly user: string; readonly pass: string } | undefined;
  readonly dataPlane: DataPlaneChoice;
  readonly stateDir: string;
  readonly mode: 'default' | 'swarm';
  /** Docker Engine API used for Swarm discovery in swarm mode (DOCKER_HOST). */
  readonly dockerHost: string;
  /** A Swarm Listener to pull every service from at start-up (Docker Flow Proxy's LISTENER_ADDRESS). */
  readonly listenerAddress: string | undefined;
  /** The proxy's own Swarm service name (Docker Flow Proxy's SERVICE_NAME); names its route copies in Swarm. */
  readonly serviceName: string;
  /** Seconds between rounds of catching up with the other replicas (tasks.SERVICE_NAME); 0: none. */
  readonly peerSyncInterval: number;
  /** ip:port of DNS servers used to resolve services; empty means the system's (/etc/resolv.conf). */
  readonly dnsServers: readonly string[];
  readonly addressMode: AddressMode;
  /** How replicas share requests when a service says nothing (BALANCE). */
  readonly balance: BalanceAlgorithm;
  /** Seconds between DNS resolutions of each service; undefined scales it with the number of backends. */
  readonly resolveInterval: number | undefined;
  /** Most task addresses followed per service in addressMode=tasks. */
  readonly maxTasks: number;
  readonly timeouts: Timeouts;
  /**
   * CIDR ranges of the load balancers in front (TRUSTED_PROXIES): their X-Forwarded-For is kept
   * and its last address is the client for allowedIps/deniedIps. Undefined: every chain is kept
   * (as Docker Flow Proxy) and the client is always the connection's source.
   */
  readonly trustedProxies: readonly string[] | undefined;
  /**
   * Raw HAProxy configuration is accepted (ALLOW_RAW_HAPROXY): backendExtra per service,
   * EXTRA_GLOBAL and EXTRA_FRONTEND. It bypasses every check but `haproxy -c`.
   */
  readonly rawHaproxy: RawHaproxySettings | undefined;
  /** Traffic ports whose connections start with a PROXY protocol v1/v2 header (PROXY_PROTOCOL). */
  readonly proxyProtocolPorts: ReadonlySet<number>;
  /** Also send RFC 7239's Forwarded header (for, proto) to backends, beside X-Forwarded-*. */
  readonly forwardedHeader: boolean;
  /** HTML answers replacing the proxy's own 403, 404, 502, 503 and 504 bodies (--error-pages), by status. */
  readonly errorPages: ReadonlyMap<ErrorPageStatus, string>;
  /** Compression of every service's responses that sets none of its own (COMPRESSION_ALGO, COMPRESSION_TYPE). */
  readonly compression: Compression | undefined;
  /** Basic auth for every service without users of its own or ignoreAuthorization (USERS). */
  readonly users: readonly Credential[] | undefined;
  /** Services declared by DFP_SERVICE_* variables, routed from start-up. */
  readonly environmentServices: readonly EnvironmentService[];
  /** One JSON line per request (docs/access-log.md); undefined: off. */
  readonly accessLog: AccessLogDestination | undefined;
  readonly stats: StatsSettings | undefined;
  readonly haproxyBinary: string;
  /** HAProxy worker threads; undefined lets HAProxy use one per CPU. */
  readonly haproxyThreads: number | undefined;
  /** Seconds in-flight requests get to finish when the proxy stops. */
  readonly stopGrace: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface RawHaproxySettings {
  /** Lines added to HAProxy's global section (EXTRA_GLOBAL). */
  readonly extraGlobal: readonly string[];
  /** Lines added to the frontend, after Flow Proxy's request rules and before its routing (EXTRA_FRONTEND). */
  readonly extraFrontend: readonly string[];
}

export class SettingsError extends Error {}

/** The ports the proxy itself listens on: no tcp or sni service may take one. */
export function proxyPorts(settings: Settings): number[] {
  return [settings.httpPort, settings.httpsPort, settings.apiPort, ...settings.extraHttpPorts];
}

type Env = Readonly<Record<string, string | undefined>>;

interface Source {
  readonly flag: string;
  readonly env: string;
}

const OPTIONS = {
  'http-port': { type: 'string' },
  'https-port': { type: 'string' },
  'bind-ports': { type: 'string' },
  'bind-address': { type: 'string' },
  'api-port': { type: 'string' },
  'api-address': { type: 'string' },
  'api-token': { type: 'string' },
  'api-user': { type: 'string' },
  'api-pass': { type: 'string' },
  'data-plane': { type: 'string' },
  'state-dir': { type: 'string' },
  mode: { type: 'string' },
  'docker-host': { type: 'string' },
  'service-name': { type: 'string' },
  'listener-address': { type: 'string' },
  'peer-sync-interval': { type: 'string' },
  'dns-servers': { type: 'string' },
  'address-mode': { type: 'string' },
  'max-tasks': { type: 'string' },
  balance: { type: 'string' },
  'resolve-interval': { type: 'string' },
  'haproxy-bin': { type: 'string' },
  'stop-grace': { type: 'string' },
  'haproxy-threads': { type: 'string' },
  'log-level': { type: 'string' },
  'forwarded-header': { type: 'boolean' },
  'trusted-proxies': { type: 'string' },
  'proxy-protocol': { type: 'string' },
  'allow-raw-haproxy': { type: 'boolean' },
  'access-log': { type: 'string' },
  'error-pages': { type: 'string' },
  'certs-dir': { type: 'string' },
  'secrets-dir': { type: 'string' },
  help: { type: 'boolean' },
} as const;

export const USAGE = `Usage: flow-proxy [options]

Options (environment variable in brackets):
  --http-port N        HTTP traffic port [HTTP_PORT] (80)
  --https-port N       HTTPS traffic port [HTTPS_PORT] (443)
  --bind-ports LIST    extra HTTP ports, comma-separated [BIND_PORTS]
  --bind-address IP    address the traffic ports listen on [BIND_ADDRESS] (0.0.0.0)
  --api-port N         control API port [API_PORT] (8080)
  --api-address IP     address the control API listens on [API_ADDRESS] (0.0.0.0)
  --api-token TOKEN    require Authorization: Bearer TOKEN on the API [API_TOKEN]
  --api-user USER      require basic auth on the API [API_USER] (with --api-pass [API_PASS])
  --data-plane KIND    auto | haproxy | builtin [DATA_PLANE] (auto: haproxy when installed)
  --state-dir DIR      route table and generated configuration [STATE_DIR] (./state)
  --mode MODE          default | swarm [MODE] (default); swarm discovers services from labels
  --docker-host URL    Docker Engine API for discovery [DOCKER_HOST] (unix:///var/run/docker.sock)
  --service-name NAME  the proxy's own Swarm service name [SERVICE_NAME] (proxy)
  --listener-address A pull services from this Swarm Listener at start [LISTENER_ADDRESS]
  --peer-sync-interval N seconds between catching up with the other replicas, 0: never
                       [PEER_SYNC_INTERVAL] (swarm: 1, otherwise 0)
  --dns-servers LIST   ip:port of DNS servers for service names [DNS_SERVERS]
                       (swarm: 127.0.0.11:53, otherwise /etc/resolv.conf)
  --address-mode MODE  vip | tasks [ADDRESS_MODE] (swarm: tasks, otherwise vip)
  --resolve-interval N seconds between DNS resolutions of a service [RESOLVE_INTERVAL]
                       (1 s per 1000 backends, at least 1 s)
  --max-tasks N        task addresses followed per service [MAX_TASKS] (32)
  --balance ALGO       roundrobin | leastconn | source, for services without balance [BALANCE] (roundrobin)
  --haproxy-bin PATH   HAProxy executable [HAPROXY_BIN] (haproxy)
  --haproxy-threads N  HAProxy worker threads [HAPROXY_THREADS] (one per CPU)
  --forwarded-header   also send RFC 7239 Forwarded to backends [FORWARDED_HEADER=true]
  --trusted-proxies L  CIDR ranges whose X-Forwarded-For is trusted [TRUSTED_PROXIES]
  --proxy-protocol P   traffic ports (or all) that expect a PROXY v1/v2 header [PROXY_PROTOCOL]
  --allow-raw-haproxy  accept raw HAProxy text: backendExtra, EXTRA_GLOBAL, EXTRA_FRONTEND [ALLOW_RAW_HAPROXY=true]
  --access-log DEST    one JSON line per request: off | stdout | /absolute/file [ACCESS_LOG] (off)
  --error-pages DIR    403.html, 404.html, 502.html, 503.html, 504.html served for the proxy's own errors [ERROR_PAGES_DIR]
  --certs-dir DIR      PEM certificate bundles to serve [CERTS_DIR] (/certs in the image)
  --secrets-dir DIR    Docker secrets; cert-* / cert_* ones are certificates [SECRETS_DIR] (/run/secrets)
  --stop-grace N       seconds in-flight requests get at shutdown [STOP_GRACE] (8)
  --log-level LEVEL    fatal|error|warn|info|debug|trace|silent [LOG_LEVEL] (info)

Docker Flow Proxy variables honoured: TIMEOUT_CONNECT, TIMEOUT_CLIENT, TIMEOUT_SERVER,
TIMEOUT_QUEUE, TIMEOUT_TUNNEL, TIMEOUT_HTTP_REQUEST, TIMEOUT_HTTP_KEEP_ALIVE, BIND_PORTS,
STATS_USER, STATS_PASS, STATS_URI, SSL_BIND_OPTIONS, SSL_BIND_CIPHERS, SSL_BIND_CIPHERSUITES,
ENABLE_H2, HTTPS_ONLY, USERS, USERS_PASS_ENCRYPTED, COMPRESSION_ALGO, COMPRESSION_TYPE, DFP_SERVICE_<PARAM> / DFP_SERVICE_<n>_<PARAM> (services); ACME: ACME_EMAIL, ACME_DIRECTORY, ACME_CA_FILE, ACME_RENEW_DAYS.
See docs/settings.md and docs/https.md.`;

/** Parses argv (without node and script) and the environment; throws SettingsError naming the setting. */
export function loadSettings(argv: readonly string[], env: Env): Settings | 'help' {
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new SettingsError(`${(error as Error).message} (run with --help for the list of options)`);
  }
  if (flags.help === true) return 'help';

  const read = (source: Source): { value: string; name: string } | undefined => {
    const flag = flags[source.flag];
    if (typeof flag === 'string') return { value: flag, name: `--${source.flag}` };
    const fromEnv = env[source.env];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, name: source.env };
    return undefined;
  };
  const port = (source: Source, fallback: number): number => {
    const got = read(source);
    return got === undefined ? fallback : parsePortSetting(got.name, got.value);
  };
  const choice = <T extends string>(source: Source, allowed: readonly T[], fallback: T): T => {
    const got = read(source);
    if (got === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(got.value)) {
      throw new SettingsError(`invalid ${got.name}: must be one of ${allowed.join(', ')}, got ${JSON.stringify(got.value)}`);
    }
    return got.value as T;
  };
  const seconds = (envName: string, fallback: number): number => {
    const raw = env[envName];
    if (raw === undefined || raw === '') return fallback;
    if (!/^[0-9]{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > 86_400) {
      throw new SettingsError(`invalid ${envName}: must be a whole number of seconds between 1 and 86400, got ${JSON.stringify(raw)}`);
    }
    return Number(raw);
  };
  const address = (source: Source, fallback: string): string => {
    const got = read(source);
    if (got === undefined) return fallback;
    if (!/^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|::|::1|[0-9a-fA-F:]+)$/.test(got.value)) {
      throw new SettingsError(`invalid ${got.name}: must be an IP address such as 0.0.0.0 or 127.0.0.1, got ${JSON.stringify(got.value)}`);
    }
    return got.value;
  };

  const mode = choice({ flag: 'mode', env: 'MODE' }, ['default', 'swarm'] as const, 'default');
  const dnsRaw = read({ flag: 'dns-servers', env: 'DNS_SERVERS' });
  const dnsServers =
    dnsRaw === undefined ? (mode === 'swarm' ? ['127.0.0.11:53'] : []) : dnsRaw.value.split(',').map((s) => parseDnsServer(dnsRaw.name, s));
  const bindPorts = read({ flag: 'bind-ports', env: 'BIND_PORTS' });
  const maxTasksRaw = read({ flag: 'max-tasks', env: 'MAX_TASKS' });
  const maxTasks = maxTasksRaw === undefined ? 32 : parseCount(maxTasksRaw.name, maxTasksRaw.value, 1, 1000);
  const peerSyncRaw = read({ flag: 'peer-sync-interval', env: 'PEER_SYNC_INTERVAL' });
  const peerSyncInterval = peerSyncRaw === undefined ? (mode === 'swarm' ? 1 : 0) : parseCount(peerSyncRaw.name, peerSyncRaw.value, 0, 3600);
  const resolveRaw = read({ flag: 'resolve-interval', env: 'RESOLVE_INTERVAL' });
  const resolveInterval = resolveRaw === undefined ? undefined : parseCount(resolveRaw.name, resolveRaw.value, 1, 300);
  const apiToken = read({ flag: 'api-token', env: 'API_TOKEN' })?.value;
  if (apiToken !== undefined && !/^[\x21-\x7e]{16,512}$/.test(apiToken)) {
    throw new SettingsError('invalid API token (--api-token / API_TOKEN): use 16 to 512 printable characters without spaces');
  }
  const apiUser = read({ flag: 'api-user', env: 'API_USER' })?.value;
  const apiPass = read({ flag: 'api-pass', env: 'API_PASS' })?.value;
  if ((apiUser === undefined) !== (apiPass === undefined)) {
    throw new SettingsError('invalid API basic auth: set both --api-user (API_USER) and --api-pass (API_PASS), or neither');
  }
  if (apiUser !== undefined && (apiUser.includes(':') || apiUser.length > 128)) {
    throw new SettingsError('invalid --api-user (API_USER): at most 128 characters, no ":"');
  }
  const stopGraceRaw = read({ flag: 'stop-grace', env: 'STOP_GRACE' });
  const stopGrace = stopGraceRaw === undefined ? 8 : parseCount(stopGraceRaw.name, stopGraceRaw.value, 0, 3600);
  const threadsRaw = read({ flag: 'haproxy-threads', env: 'HAPROXY_THREADS' });
  const haproxyThreads = threadsRaw === undefined ? undefined : parseCount(threadsRaw.name, threadsRaw.value, 1, 64);
  const stateDir = read({ flag: 'state-dir', env: 'STATE_DIR' })?.value ?? 'state';
  const haproxyBinary = read({ flag: 'haproxy-bin', env: 'HAPROXY_BIN' })?.value ?? 'haproxy';
  if (/[\s'"#]/.test(stateDir)) {
    throw new SettingsError(`invalid state directory ${JSON.stringify(stateDir)}: must not contain spaces, quotes or '#'`);
  }

  const certsDir = read({ flag: 'certs-dir', env: 'CERTS_DIR' })?.value;
  const secretsDir = path.resolve(read({ flag: 'secrets-dir', env: 'SECRETS_DIR' })?.value ?? '/run/secrets');
  const rawAllowed = flags['allow-raw-haproxy'] === true || parseBoolean('ALLOW_RAW_HAPROXY', env.ALLOW_RAW_HAPROXY);
  const settings: Settings = {
    httpPort: port({ flag: 'http-port', env: 'HTTP_PORT' }, 80),
    httpsPort: port({ flag: 'https-port', env: 'HTTPS_PORT' }, 443),
    tls: readTls(env),
    certsDir: certsDir === undefined ? undefined : path.resolve(certsDir),
    secretsDir,
    httpsOnly: parseBoolean('HTTPS_ONLY', env.HTTPS_ONLY),
    acme: readAcme(env),
    extraHttpPorts: bindPorts === undefined ? [] : bindPorts.value.split(',').map((p) => parsePortSetting(bindPorts.name, p.trim())),
    bindAddress: address({ flag: 'bind-address', env: 'BIND_ADDRESS' }, '0.0.0.0'),
    apiPort: port({ flag: 'api-port', env: 'API_PORT' }, 8080),
    apiAddress: address({ flag: 'api-address', env: 'API_ADDRESS' }, '0.0.0.0'),
    apiToken,
    apiBasicAuth: apiUser === undefined || apiPass === undefined ? undefined : { user: apiUser, pass: apiPass },
    dataPlane: choice({ flag: 'data-plane', env: 'DATA_PLANE' }, ['auto', 'haproxy', 'builtin'] as const, 'auto'),
    stateDir: path.resolve(stateDir),
    mode,
    dockerHost: parseDockerHost(read({ flag: 'docker-host', env: 'DOCKER_HOST' })),
    serviceName: parseProxyName(read({ flag: 'service-name', env: 'SERVICE_NAME' })),
    peerSyncInterval,
    listenerAddress: parseListenerAddress(read({ flag: 'listener-address', env: 'LISTENER_ADDRESS' })),
    dnsServers,
    addressMode: choice({ flag: 'address-mode', env: 'ADDRESS_MODE' }, ['vip', 'tasks'] as const, mode === 'swarm' ? 'tasks' : 'vip'),
    balance: choice({ flag: 'balance', env: 'BALANCE' }, BALANCE_ALGORITHMS, 'roundrobin'),
    maxTasks,
    resolveInterval,
    timeouts: {
      connect: seconds('TIMEOUT_CONNECT', 5),
      client: seconds('TIMEOUT_CLIENT', 20),
      server: seconds('TIMEOUT_SERVER', 20),
      queue: seconds('TIMEOUT_QUEUE', 30),
      tunnel: seconds('TIMEOUT_TUNNEL', 3600),
      httpRequest: seconds('TIMEOUT_HTTP_REQUEST', 5),
      httpKeepAlive: seconds('TIMEOUT_HTTP_KEEP_ALIVE', 15),
    },
    stats: readStats(env),
    forwardedHeader: flags['forwarded-header'] === true || parseBoolean('FORWARDED_HEADER', env.FORWARDED_HEADER),
    trustedProxies: parseTrustedProxies(read({ flag: 'trusted-proxies', env: 'TRUSTED_PROXIES' })),
    proxyProtocolPorts: new Set(),
    rawHaproxy: readRawHaproxy(rawAllowed, env),
    accessLog: parseAccessLog(read({ flag: 'access-log', env: 'ACCESS_LOG' })),
    environmentServices: readEnvironmentServices(env, { secretsDir, rawHaproxy: rawAllowed }),
    users: readUsers(env),
    compression: readCompression(env),
    errorPages: readErrorPages(read({ flag: 'error-pages', env: 'ERROR_PAGES_DIR' })),
    haproxyBinary,
    haproxyThreads,
    stopGrace,
    logLevel: choice(
      { flag: 'log-level', env: 'LOG_LEVEL' },
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const,
      'info',
    ),
  };
  const ports = [settings.httpPort, settings.httpsPort, settings.apiPort, ...settings.extraHttpPorts];
  const clash = ports.find((p, i) => ports.indexOf(p) !== i);
  if (clash !== undefined) throw new SettingsError(`invalid ports: ${clash} is used twice (HTTP, HTTPS, API and BIND_PORTS must differ)`);
  const trafficPorts = [settings.httpPort, settings.httpsPort, ...settings.extraHttpPorts];
  return { ...settings, proxyProtocolPorts: parseProxyProtocolPorts(read({ flag: 'proxy-protocol', env: 'PROXY_PROTOCOL' }), trafficPorts) };
}

function readRawHaproxy(allowed: boolean, env: Env): RawHaproxySettings | undefined {
  const lines = (name: 'EXTRA_GLOBAL' | 'EXTRA_FRONTEND'): string[] => {
    const value = env[name];
    if (value === undefined || value === '') return [];
    if (!allowed) throw new SettingsError(`${name} is raw HAProxy configuration, which Flow Proxy refuses unless ALLOW_RAW_HAPROXY=true (docs/settings.md)`);
    try {
      return parseRawHaproxy(value);
    } catch (error) {
      if (error instanceof InvalidValue) throw new SettingsError(`invalid ${name}: ${error.message}`);
      throw error;
    }
  };
  const extraGlobal = lines('EXTRA_GLOBAL');
  const extraFrontend = lines('EXTRA_FRONTEND');
  return allowed ? { extraGlobal, extraFrontend } : undefined;
}

function parseTrustedProxies(got: { value: string; name: string } | undefined): string[] | undefined {
  if (got === undefined) return undefined;
  try {
    return parseList(got.value, parseCidr);
  } catch (error) {
    if (error instanceof InvalidValue) throw new SettingsError(`invalid ${got.name}: ${error.message}`);
    throw error;
  }
}

/** "all" or a comma-separated list of the traffic ports (HTTP, HTTPS, BIND_PORTS). */
function parseProxyProtocolPorts(got: { value: string; name: string } | undefined, trafficPorts: readonly number[]): Set<number> {
  if (got === undefined) return new Set();
  if (got.value === 'all') return new Set(trafficPorts);
  const ports = got.value.split(',').map((item) => parsePortSetting(got.name, item.trim()));
  const stray = ports.find((p) => !trafficPorts.includes(p));
  if (stray !== undefined) throw new SettingsError(`invalid ${got.name}: ${stray} is not a traffic port; give some of ${trafficPorts.join(', ')} or all`);
  return new Set(ports);
}

export const ERROR_PAGE_STATUSES = [403, 404, 502, 503, 504] as const;
export type ErrorPageStatus = (typeof ERROR_PAGE_STATUSES)[number];
/** HAProxy keeps an error answer in one buffer (16 kB with its headers). */
const MAX_ERROR_PAGE_BYTES = 12 * 1024;

function readErrorPages(got: { value: string; name: string } | undefined): Map<ErrorPageStatus, string> {
  const pages = new Map<ErrorPageStatus, string>();
  if (got === undefined) return pages;
  if (!path.isAbsolute(got.value) || !existsSync(got.value)) {
    throw new SettingsError(`invalid ${got.name}: must be an existing directory given by its absolute path, got ${JSON.stringify(got.value)}`);
  }
  for (const status of ERROR_PAGE_STATUSES) {
    const file = path.join(got.value, `${status}.html`);
    if (!existsSync(file)) continue;
    const page = readFileSync(file, 'utf8');
    if (Buffer.byteLength(page) > MAX_ERROR_PAGE_BYTES) {
      throw new SettingsError(`invalid ${got.name}: ${file} is larger than ${MAX_ERROR_PAGE_BYTES} bytes (HAProxy holds an error page in one buffer)`);
    }
    pages.set(status, page);
  }
  if (pages.size === 0) {
    throw new SettingsError(`invalid ${got.name}: ${got.value} holds none of ${ERROR_PAGE_STATUSES.map((s) => `${s}.html`).join(', ')}`);
  }
  return pages;
}

function readCompression(env: Env): Compression | undefined {
  const read = <T>(name: string, parse: (raw: string) => T): T | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    try {
      return parse(raw);
    } catch (error) {
      if (error instanceof InvalidValue) throw new SettingsError(`invalid ${name}: ${error.message}`);
      throw error;
    }
  };
  const algos = read('COMPRESSION_ALGO', parseCompressionAlgos);
  const types = read('COMPRESSION_TYPE', parseMimeTypes);
  if (algos === undefined) {
    if (types !== undefined) throw new SettingsError('invalid COMPRESSION_TYPE: it says which responses COMPRESSION_ALGO compresses; set COMPRESSION_ALGO too');
    return undefined;
  }
  return { algos, types };
}

function readUsers(env: Env): Credential[] | undefined {
  const raw = env.USERS;
  const hashed = parseBoolean('USERS_PASS_ENCRYPTED', env.USERS_PASS_ENCRYPTED);
  if (raw === undefined || raw === '') return undefined;
  try {
    return parseCredentials(raw, hashed);
  } catch (error) {
    if (error instanceof InvalidValue) throw new SettingsError(`invalid USERS: ${error.message}`);
    throw error;
  }
}

function readEnvironmentServices(env: Env, context: ParseContext): EnvironmentService[] {
  try {
    return environmentServices(env, context);
  } catch (error) {
    if (error instanceof EnvironmentServiceError) throw new SettingsError(error.message);
    throw error;
  }
}

function parseAccessLog(got: { value: string; name: string } | undefined): AccessLogDestination | undefined {
  if (got === undefined || got.value === 'off' || got.value === 'false') return undefined;
  if (got.value === 'stdout' || got.value === 'true') return 'stdout';
  if (!path.isAbsolute(got.value)) {
    throw new SettingsError(`invalid ${got.name}: use off, stdout or an absolute file path such as /var/log/flow-proxy/access.log, got ${JSON.stringify(got.value)}`);
  }
  return { file: got.value };
}

/**
 * SSL_BIND_OPTIONS takes Docker Flow Proxy's (HAProxy's) bind keywords; only those with a
 * meaning on both planes are accepted, so the value can never add another directive.
 */
function readTls(env: Env): TlsSettings {
  let minVersion: TlsSettings['minVersion'] = 'TLSv1.2';
  let maxVersion: TlsSettings['maxVersion'] = 'TLSv1.3';
  let preferServerCiphers = true;
  let sessionTickets = true;
  const words = (env.SSL_BIND_OPTIONS ?? '').split(/\s+/).filter((w) => w !== '');
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    const version = (value: string | undefined): 'TLSv1.2' | 'TLSv1.3' => {
      if (value !== 'TLSv1.2' && value !== 'TLSv1.3') {
        throw new SettingsError(`invalid SSL_BIND_OPTIONS: ${word} takes TLSv1.2 or TLSv1.3 (older versions are not offered), got ${JSON.stringify(value ?? '')}`);
      }
      i++;
      return value;
    };
    if (word === 'ssl-min-ver') minVersion = version(words[i + 1]);
    else if (word === 'ssl-max-ver') maxVersion = version(words[i + 1]);
    else if (word === 'no-tlsv12') minVersion = 'TLSv1.3';
    else if (word === 'no-tlsv13') maxVersion = 'TLSv1.2';
    else if (word === 'force-tlsv12') [minVersion, maxVersion] = ['TLSv1.2', 'TLSv1.2'];
    else if (word === 'force-tlsv13') [minVersion, maxVersion] = ['TLSv1.3', 'TLSv1.3'];
    else if (word === 'no-tls-tickets') sessionTickets = false;
    else if (word === 'prefer-client-ciphers') preferServerCiphers = false;
    // Older protocols are never offered, so switching them off again changes nothing.
    else if (!['no-sslv3', 'no-tlsv10', 'no-tlsv11'].includes(word)) {
      throw new SettingsError(
        `invalid SSL_BIND_OPTIONS: unknown option ${JSON.stringify(word.slice(0, 40))}; use ssl-min-ver, ssl-max-ver, no-tlsv12, no-tlsv13, force-tlsv12, force-tlsv13, no-tls-tickets, prefer-client-ciphers, no-sslv3, no-tlsv10, no-tlsv11`,
      );
    }
  }
  if (minVersion === 'TLSv1.3' && maxVersion === 'TLSv1.2') throw new SettingsError('invalid SSL_BIND_OPTIONS: the minimum TLS version is above the maximum');
  const cipherList = (name: string, fallback: string): string => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^[A-Za-z0-9_+!.=@-]+(?::[A-Za-z0-9_+!.=@-]+)*$/.test(raw) || raw.length > 2048) {
      throw new SettingsError(`invalid ${name}: an OpenSSL cipher list such as ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384 (names separated by ':', no spaces)`);
    }
    return raw;
  };
  return {
    minVersion,
    maxVersion,
    ciphers: cipherList('SSL_BIND_CIPHERS', INTERMEDIATE_CIPHERS),
    cipherSuites: cipherList('SSL_BIND_CIPHERSUITES', TLS13_CIPHERSUITES),
    preferServerCiphers,
    sessionTickets,
    http2: env.ENABLE_H2 === undefined || env.ENABLE_H2 === '' ? true : parseBoolean('ENABLE_H2', env.ENABLE_H2),
  };
}

function readAcme(env: Env): AcmeSettings {
  const email = env.ACME_EMAIL === '' ? undefined : env.ACME_EMAIL;
  const directory = env.ACME_DIRECTORY === '' ? undefined : env.ACME_DIRECTORY;
  if (email !== undefined && !/^[^\s@<>"',;]{1,64}@[A-Za-z0-9.-]{1,253}$/.test(email)) {
    throw new SettingsError(`invalid ACME_EMAIL: an e-mail address such as ops@example.com, got ${JSON.stringify(email.slice(0, 80))}`);
  }
  if (directory !== undefined && !/^https:\/\/[^\s]+$/.test(directory)) {
    throw new SettingsError(`invalid ACME_DIRECTORY: the https:// URL of an ACME directory, such as ${LETS_ENCRYPT_DIRECTORY}`);
  }
  const renew = env.ACME_RENEW_DAYS;
  return {
    directoryUrl: directory ?? LETS_ENCRYPT_DIRECTORY,
    email,
    caFile: env.ACME_CA_FILE === undefined || env.ACME_CA_FILE === '' ? undefined : path.resolve(env.ACME_CA_FILE),
    renewBeforeDays: renew === undefined || renew === '' ? 30 : parseCount('ACME_RENEW_DAYS', renew, 1, 36500),
  };
}

function parseBoolean(name: string, raw: string | undefined): boolean {
  if (raw === undefined || raw === '' || raw === 'false') return false;
  if (raw === 'true') return true;
  throw new SettingsError(`invalid ${name}: must be true or false, got ${JSON.stringify(raw)}`);
}

function parseListenerAddress(got: { value: string; name: string } | undefined): string | undefined {
  if (got === undefined) return undefined;
  if (!/^(https?:\/\/)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(got.value)) {
    throw new SettingsError(`invalid ${got.name}: use a host name with an optional port, such as swarm-listener or swarm-listener:8080, got ${JSON.stringify(got.value)}`);
  }
  return got.value;
}

function parseProxyName(got: { value: string; name: string } | undefined): string {
  if (got === undefined) return 'proxy';
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(got.value)) {
    throw new SettingsError(`invalid ${got.name}: must be a Docker service name, got ${JSON.stringify(got.value)}`);
  }
  return got.value;
}

function parseDockerHost(got: { value: string; name: string } | undefined): string {
  if (got === undefined) return 'unix:///var/run/docker.sock';
  if (!/^(unix:\/\/\/|\/|tcp:\/\/)[^\s]+$/.test(got.value)) {
    throw new SettingsError(`invalid ${got.name}: use unix:///path/to/docker.sock or tcp://host:port, got ${JSON.stringify(got.value)}`);
  }
  return got.value;
}

function parsePortSetting(name: string, raw: string): number {
  return parseCount(name, raw, 1, 65535);
}

function parseCount(name: string, raw: string, min: number, max: number): number {
  if (!/^[0-9]{1,6}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new SettingsError(`invalid ${name}: must be a whole number between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

function parseDnsServer(name: string, raw: string): string {
  const match = /^([0-9]{1,3}(?:\.[0-9]{1,3}){3})(?::([0-9]{1,5}))?$/.exec(raw.trim());
  if (match === null) {
    throw new SettingsError(`invalid ${name}: each entry must be an IPv4 address with an optional port, such as 127.0.0.11:53, got ${JSON.stringify(raw)}`);
  }
  return `${match[1]}:${parsePortSetting(name, match[2] ?? '53')}`;
}

/** Docker Flow Proxy's stats page: enabled when both STATS_USER and STATS_PASS are set and not "none". */
function readStats(env: Env): StatsSettings | undefined {
  const user = env.STATS_USER;
  const pass = env.STATS_PASS;
  if (user === undefined || pass === undefined || user === 'none' || pass === 'none' || user === '' || pass === '') return undefined;
  const uri = env.STATS_URI ?? '/admin?stats';
  for (const [name, value] of [['STATS_USER', user], ['STATS_PASS', pass]] as const) {
    if (!/^[A-Za-z0-9._~!*+,;=@-]{1,128}$/.test(value)) {
      throw new SettingsError(`invalid ${name}: use 1-128 letters, digits or URL-safe punctuation (no spaces, quotes or ':')`);
    }
  }
  if (!/^\/[A-Za-z0-9._~!$&()*+,;=:@/?-]{0,255}$/.test(uri)) {
    throw new SettingsError(`invalid STATS_URI: must be a path starting with '/', such as /admin?stats, got ${JSON.stringify(uri)}`);
  }
  return { user, pass, uri };
}
