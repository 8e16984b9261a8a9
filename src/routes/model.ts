/**
 * The route model shared by the control API, the discovery sources and every data plane.
 * Values in these types have passed validation (see params.ts): they are safe to render
 * into HAProxy configuration and map files without further escaping.
 */

/** How a service's replicas are addressed: its Swarm VIP (service name) or every task IP (tasks.NAME). */
export type AddressMode = 'vip' | 'tasks';

export interface Destination {
  /** 0 for the non-indexed parameters, N for `port.N`, `servicePath.N`, ... */
  readonly index: number;
  readonly port: number;
  /** Path prefixes, each starting with '/'. Empty when the destination matches by domain only. */
  readonly paths: readonly string[];
  /** Lower-case host names; `*.example.com` matches every sub-domain of example.com. */
  readonly domains: readonly string[];
  /** The replicas' own TLS port: requests that arrived over HTTPS are sent there over TLS. */
  readonly httpsPort?: number;
  /** reqMode tcp/sni: the proxy port connections arrive on (srcPort). */
  readonly srcPort?: number;
  /** reqMode tcp: the serviceGroup whose members share srcPort and its connections. */
  readonly group?: GroupMembership;
}

/**
 * A tcp destination's place in a serviceGroup: the destinations of one group on one srcPort
 * share a listener, whose connections are balanced over all their replicas together.
 */
export interface GroupMembership {
  /** serviceGroup: letters, digits, '_', '.', '-' (a service name's grammar). */
  readonly name: string;
  /** balanceGroup, which every member of the group on the port gives alike; undefined: the global BALANCE. */
  readonly balance?: BalanceAlgorithm;
  /** Each of the member's replicas counts this many times (1-256) when connections are shared. */
  readonly weight: number;
}

export const MAX_WEIGHT = 256;

export type RedirectCode = 301 | 302 | 303 | 307 | 308;

/** A header field a route adds or sets: a token name and literal text (see grammar.ts). */
export interface HeaderField {
  readonly name: string;
  readonly value: string;
}

/** A basic-auth user: its password, or a crypt(3) hash of it ($5$, $6$, or bcrypt's $2a$/$2b$/$2y$). */
export interface Credential {
  readonly user: string;
  readonly password: string;
  readonly hashed: boolean;
}

/**
 * A rewrite of the request path (reqPathSearchReplace): the first match of `search`, a regular
 * expression of path characters with an optional leading '^', is replaced by `replace`.
 */
export interface PathRewrite {
  readonly search: string;
  readonly replace: string;
}

/** 'br' (brotli) only on the built-in plane: HAProxy 2.6 cannot produce it. */
export type CompressionAlgo = 'gzip' | 'deflate' | 'br';

/** Response compression (compressionAlgo, compressionType). */
export interface Compression {
  /** In order of preference. */
  readonly algos: readonly CompressionAlgo[];
  /** MIME types compressed (prefix match); undefined compresses every type, as HAProxy. */
  readonly types: readonly string[] | undefined;
}

/** The compression a service's responses get: its own, else the global one; its types fall back to the global types (as HAProxy's defaults). */
export function effectiveCompression(service: Service, global: Compression | undefined): Compression | undefined {
  if (service.compression === undefined) return global;
  return { algos: service.compression.algos, types: service.compression.types ?? global?.types };
}

/** Header edits on one side of an exchange, applied in this order: delete, set (replace), add. */
export interface HeaderRules {
  readonly del: readonly string[];
  readonly set: readonly HeaderField[];
  readonly add: readonly HeaderField[];
}

/**
 * How serviceDomain is compared with the request's host (serviceDomainAlgo, named after HAProxy's
 * fetches): 'beg' the host starts with it, 'end' ends with it, 'dom' contains it as whole
 * dot-separated labels. Undefined: equal (or a wildcard's sub-domain), as hdr(host).
 */
export type DomainMatch = 'beg' | 'end' | 'dom';

/** Conditions beyond host and path a request must meet to take a service's routes (docs/routing.md). */
export interface RouteConditions {
  /** Path prefixes the service's paths give way on (servicePathExclude). */
  readonly excludedPaths: readonly string[];
  /** Each header is present with exactly this value, one of its comma-separated values (serviceHeader). */
  readonly headers: readonly HeaderField[];
  /** The User-Agent contains one of these, case-insensitively (userAgent); empty: any. */
  readonly userAgents: readonly string[];
  readonly domainMatch: DomainMatch | undefined;
}

export type ReqMode = 'http' | 'tcp' | 'sni';

/** How a destination's replicas share requests (HAProxy's `balance`). */
export type BalanceAlgorithm = 'roundrobin' | 'leastconn' | 'source';
export const BALANCE_ALGORITHMS: readonly BalanceAlgorithm[] = ['roundrobin', 'leastconn', 'source'];

/** Active health check of a destination's replicas, run by the control plane for both planes. */
export interface HealthCheckSpec {
  /** 'http': GET `path` answers 2xx/3xx; 'tcp': a connection opens (checkTcp). */
  readonly kind: 'http' | 'tcp';
  readonly path: string;
  readonly intervalSeconds: number;
  /** Consecutive successes that put a replica in rotation (a new one included). */
  readonly rise: number;
  /** Consecutive failures, of probes or of requests, that take it out. */
  readonly fall: number;
}

/** The cookie that pins a client to a replica (sessionType=sticky-server), on both planes. */
export const STICKY_COOKIE = 'FPSERVER';

export interface Service {
  readonly name: string;
  /** http: routed by host and path; tcp: every connection to srcPort; sni: TLS passed through, chosen by its server name (serviceDomain). */
  readonly reqMode: ReqMode;
  /** reqMode tcp/sni: seconds a client connection may stay idle (timeoutClient); undefined: TIMEOUT_CLIENT. */
  readonly timeoutClient?: number;
  /** Undefined means the global default (settings.addressMode). */
  readonly addressMode?: AddressMode;
  /** Host name or IPv4 address of replicas outside the Swarm, used instead of the service name (Docker Flow Proxy's outboundHostname). */
  readonly outboundHostname?: string;
  /** Seconds. Undefined means the global default. */
  readonly timeoutServer?: number;
  readonly timeoutTunnel?: number;
  readonly destinations: readonly Destination[];
  /** Redirect plain-HTTP requests to HTTPS; undefined means the global HTTPS_ONLY. */
  readonly httpsOnly?: boolean;
  /** Status of the HTTPS redirect; undefined means 302, as Docker Flow Proxy. */
  readonly httpsRedirectCode?: RedirectCode;
  /**
   * Redirect to HTTPS the plain-HTTP requests whose X-Forwarded-Proto says http: a load balancer
   * in front terminated TLS for the others (Docker Flow Proxy's redirectWhenHttpProto).
   */
  readonly redirectWhenHttpProto?: boolean;
  /** Old host names redirected (301) to the service's first domain. */
  readonly redirectFromDomains?: readonly string[];
  /** Name of the certificate served for this service's domains, whatever other certificates claim them. */
  readonly serviceCert?: string;
  /** Obtain a certificate for the service's domains by ACME. */
  readonly letsencrypt?: boolean;
  /** Do not verify the certificate of replicas reached over TLS (httpsPort). */
  readonly sslVerifyNone?: boolean;
  /** Edits of the request before it is forwarded (addReqHeader, setReqHeader, delReqHeader). */
  readonly requestHeaders?: HeaderRules;
  /** Edits of the backend's response (addResHeader, setResHeader, delResHeader). */
  readonly responseHeaders?: HeaderRules;
  /** Only these methods are forwarded, others get 403 (upper case). */
  readonly allowedMethods?: readonly string[];
  /** These methods get 403. */
  readonly deniedMethods?: readonly string[];
  /** Requests over plain HTTP get 403. */
  readonly denyHttp?: boolean;
  /** Compression of the service's responses, in place of the global COMPRESSION_ALGO. */
  readonly compression?: Compression;
  /** Path rewrites applied in order before the request is forwarded. */
  readonly pathRewrites?: readonly PathRewrite[];
  /** Basic auth for this service (users), in place of the global USERS. */
  readonly users?: readonly Credential[];
  /** Exempt from the global USERS (ignoreAuthorization). */
  readonly ignoreAuthorization?: boolean;
  /** Matching conditions; routes with conditions are tried before the others. */
  readonly conditions?: RouteConditions;
  /** Requests no route matches go to the service's first destination instead of a 404 (isDefaultBackend). */
  readonly isDefaultBackend?: boolean;
  /** Only clients in these CIDR ranges are served, others get 403 (allowedIps). */
  readonly allowedIps?: readonly string[];
  /** Clients in these CIDR ranges get 403 (deniedIps). */
  readonly deniedIps?: readonly string[];
  /** Tried before other routes with conditions at the same place in the order (aclName); undefined: the service name. */
  readonly aclName?: string;
  /**
   * Connections to the replicas are closed after each response ('http-server-close'), or the
   * client's too ('httpclose'), as HAProxy's options (connectionMode). Undefined: keep-alive.
   */
  readonly connectionMode?: 'http-server-close' | 'httpclose';
  /** Replicas get requests only while they pass it; undefined: every address is used. */
  readonly healthCheck?: HealthCheckSpec;
  /** Undefined: the global BALANCE (round-robin by default). */
  readonly balance?: BalanceAlgorithm;
  /** Clients stay on one replica while it exists, by the FPSERVER cookie (sessionType=sticky-server). */
  readonly sticky?: boolean;
  /** Raw HAProxy directives added to the service's backends (backendExtra, with ALLOW_RAW_HAPROXY); the built-in plane refuses them. */
  readonly backendExtra?: readonly string[];
}

/** Realm of the basic-auth challenge, on both planes. */
export const AUTH_REALM = 'Flow Proxy';

/** The users a request to `service` must be one of; undefined when it needs no credentials. */
export function requiredUsers(service: Service, globalUsers: readonly Credential[] | undefined): readonly Credential[] | undefined {
  if (service.users !== undefined) return service.users;
  return service.ignoreAuthorization === true ? undefined : globalUsers;
}

/** Where a route came from; planes never look at it, the table uses it to merge sources. */
export type RouteSource = 'api' | 'swarm';

export interface ServiceEntry {
  readonly service: Service;
  /** The parameters the service was configured with, normalised; persisted and re-parsed at start-up. */
  readonly params: Readonly<Record<string, string>>;
  readonly source: RouteSource;
}

/** An immutable version of the whole route table, as handed to data planes. */
export interface RouteTableSnapshot {
  readonly version: number;
  readonly services: ReadonlyMap<string, ServiceEntry>;
}

/** How much a route's conditions ask for: routes asking more are tried first among conditional routes. */
export function conditionWeight(conditions: RouteConditions): number {
  return conditions.headers.length + (conditions.userAgents.length > 0 ? 1 : 0) + (conditions.excludedPaths.length > 0 ? 1 : 0);
}

/** One (domain, path) -> destination pair; the unit of matching. */
export interface Route {
  /** null for routes that match any host. */
  readonly domain: string | null;
  readonly path: string;
  readonly service: Service;
  readonly destination: Destination;
}

/** Expands a service into its routes: every domain x every path of every destination. */
export function routesOf(service: Service): Route[] {
  const routes: Route[] = [];
  // TCP and SNI services have no HTTP routes: they are reached by their srcPort (listeners.ts).
  if (service.reqMode !== 'http') return routes;
  for (const destination of service.destinations) {
    const paths = destination.paths.length > 0 ? destination.paths : ['/'];
    const domains: (string | null)[] = destination.domains.length > 0 ? [...destination.domains] : [null];
    for (const domain of domains) {
      for (const path of paths) routes.push({ domain, path, service, destination });
    }
  }
  return routes;
}

/** What a route claims in the table: its domain and path, and its conditions if any (routes with different conditions may share a path). */
export function routeKey(route: Pick<Route, 'domain' | 'path'> & { readonly service: Pick<Service, 'conditions'> }): string {
  const plain = `${route.domain ?? '*any*'} ${route.path}`;
  return route.service.conditions === undefined ? plain : `${plain} if ${JSON.stringify(route.service.conditions)}`;
}
