/**
 * Docker Flow Proxy's reconfigure parameters (and the Swarm Listener's com.df.* labels, which
 * carry the same names) -> a validated Service. Every parameter is either understood, or
 * refused with a message naming it: nothing is silently ignored.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  InvalidValue,
  parseDomain,
  parseHeaderField,
  parseHeaderName,
  parseList,
  parseMethod,
  parseCidr,
  parseHeaderCondition,
  parseUserAgent,
  parseRawHaproxy,
  parseBalance,
  parseCount,
  parseCredentials,
  parsePathRewrites,
  parseCompressionAlgos,
  parseMimeTypes,
  parsePath,
  parsePort,
  parseSeconds,
  parseServiceName,
  parseGroupName,
  quote,
} from './grammar.js';
import type { AddressMode, BalanceAlgorithm, CompressionAlgo, ReqMode, Destination, DomainMatch, GroupMembership, HeaderField, HeaderRules, RedirectCode, RouteConditions, Service } from './model.js';
import { MAX_WEIGHT } from './model.js';
import { CERT_NAME } from '../tls/model.js';

export type ParamValue = string | readonly string[] | undefined;
export type RawParams = Readonly<Record<string, ParamValue>>;

export interface ParamError {
  /** 400 for invalid input; 409 for an http service with neither path nor domain (final for the Swarm Listener). */
  readonly status: 400 | 409;
  readonly parameter: string;
  readonly message: string;
}

export type ParseResult =
  | { readonly ok: true; readonly service: Service; readonly params: Record<string, string> }
  | { readonly ok: false; readonly error: ParamError };

/** addReqHeader .. delResHeader: which side and which edit each one is. */
const HEADER_PARAMS = ['addReqHeader', 'setReqHeader', 'delReqHeader', 'addResHeader', 'setResHeader', 'delResHeader'] as const;
type HeaderParam = (typeof HEADER_PARAMS)[number];

/** serviceGroup and its tuning: what joins a tcp destination to others on its srcPort. */
const GROUP_PARAMS = new Set(['serviceGroup', 'balanceGroup', 'weight']);
const DESTINATION_PARAMS = new Set(['port', 'servicePath', 'serviceDomain', 'pathType', 'httpsPort', 'srcPort', ...GROUP_PARAMS]);
/** What a tcp or sni service may set; everything else shapes HTTP requests and is refused for them. */
const STREAM_PARAMS = new Set([
  'serviceName', 'reqMode', 'port', 'srcPort', 'serviceDomain', 'addressMode', 'outboundHostname', 'discoveryType',
  'timeoutServer', 'timeoutClient', 'balance', 'checkTcp', 'healthCheckInterval', 'healthCheckRise', 'healthCheckFall', 'checkResolvers', ...GROUP_PARAMS,
]);
const SERVICE_PARAMS = new Set([
  'serviceName', 'reqMode', 'addressMode', 'outboundHostname', 'timeoutServer', 'timeoutTunnel',
  'httpsOnly', 'httpsRedirectCode', 'redirectWhenHttpProto', 'redirectFromDomain', 'serviceCert', 'letsencrypt', 'sslVerifyNone',
  'reqPathSearchReplace', 'reqPathSearch', 'reqPathReplace', 'compressionAlgo', 'compressionType',
  ...HEADER_PARAMS, 'allowedMethods', 'deniedMethods', 'denyHttp', 'users', 'usersPassEncrypted', 'usersSecret', 'ignoreAuthorization',
  'servicePathExclude', 'serviceHeader', 'userAgent', 'serviceDomainAlgo', 'isDefaultBackend', 'allowedIps', 'deniedIps', 'backendExtra',
  'aclName', 'discoveryType', 'serviceDomainMatchAll', 'xForwardedProto', 'connectionMode', 'balance', 'sessionType',
  'healthCheckPath', 'checkTcp', 'healthCheckInterval', 'healthCheckRise', 'healthCheckFall', 'timeoutClient', 'checkResolvers',
]);
/** Docker Flow Proxy's older names, read as the current ones. */
const ALIASES: Readonly<Record<string, string>> = { addHeader: 'addReqHeader', setHeader: 'setReqHeader' };
const CONNECTION_MODES = ['http-keep-alive', 'http-server-close', 'httpclose'] as const;
/** serviceDomainAlgo values (HAProxy fetches, as Docker Flow Proxy takes them) -> how the domain is compared. */
const DOMAIN_ALGOS: Readonly<Record<string, DomainMatch | undefined>> = { 'hdr(host)': undefined, 'hdr_beg(host)': 'beg', 'hdr_end(host)': 'end', 'hdr_dom(host)': 'dom' };
const REDIRECT_CODES: readonly RedirectCode[] = [301, 302, 303, 307, 308];
/**
 * Sent by the Swarm Listener or set as labels for Docker Flow Proxy's own bookkeeping; they do
 * not change how one proxy routes (docs/parameters.md says why each one is accepted).
 */
const BOOKKEEPING_PARAMS = new Set([
  'notify', 'distribute', 'replicas', 'shortName', 'notifyService',
  // Free text for Docker Flow Proxy's custom templates; its own template ignores it too.
  'userDef',
  // Docker Flow Monitor reads these com.df.* labels from the same services.
  'alertName', 'alertIf', 'alertFor', 'alertLabels', 'alertAnnotations', 'alertPersistent', 'scrapePort', 'scrapeNetwork',
]);
/** Docker Flow Proxy parameters Flow Proxy does not implement yet: refused rather than ignored. */
const UNSUPPORTED_DFP_PARAMS = new Set([
  'srcHttpsPort',
  'verifyClientSsl',
]);

/** Docker Flow Proxy parameters that cannot apply to how Flow Proxy builds its configuration, with the reason. */
const NOT_APPLICABLE_PARAMS: Readonly<Record<string, string>> = {
  serviceColor: "it belonged to an early Docker Flow Proxy blue-green scheme that its later releases dropped; run the two colours as two services and move the route with reconfigure",
  templateFePath:
    "Docker Flow Proxy's Go templates replace sections of its generated configuration; Flow Proxy's frontend is map-based and its backends' servers are managed at run time, so there is nothing a template could replace. Use backendExtra or EXTRA_FRONTEND with ALLOW_RAW_HAPROXY=true",
  templateBePath:
    "Docker Flow Proxy's Go templates replace sections of its generated configuration; Flow Proxy's frontend is map-based and its backends' servers are managed at run time, so there is nothing a template could replace. Use backendExtra or EXTRA_FRONTEND with ALLOW_RAW_HAPROXY=true",
};

const MAX_INDEX = 99;
const KEY = /^([A-Za-z]+)(?:\.([1-9][0-9]?))?$/;

class ParamFailure extends Error {
  constructor(readonly error: ParamError) {
    super(error.message);
  }
}

function fail(parameter: string, message: string, status: 400 | 409 = 400): never {
  throw new ParamFailure({ status, parameter, message });
}

function single(key: string, value: ParamValue): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (value.length === 1) return value[0];
  return fail(key, `${key} was given ${value.length} times; give it once (use a comma-separated list for several values)`);
}

function checked<T>(key: string, raw: string, parse: (raw: string) => T): T {
  try {
    return parse(raw);
  } catch (error) {
    if (error instanceof InvalidValue) fail(key, `${key}: ${error.message}`);
    throw error;
  }
}

interface DestinationDraft {
  srcPort?: number;
  port?: number;
  httpsPort?: number;
  paths: string[];
  domains: string[];
  group?: string;
  balanceGroup?: BalanceAlgorithm;
  weight?: number;
}

/** What parsing needs from the proxy's settings. */
export interface ParseContext {
  /** Docker secrets: usersSecret=NAME reads dfp_users_NAME here. */
  readonly secretsDir: string;
  /** Raw HAProxy text (backendExtra) is accepted: the operator set ALLOW_RAW_HAPROXY. */
  readonly rawHaproxy: boolean;
}

/** `context` is needed for usersSecret; without it (tests, pure checks) usersSecret is refused. */
export function parseServiceParams(raw: RawParams, context?: ParseContext): ParseResult {
  try {
    return parseOrThrow(raw, context);
  } catch (error) {
    if (error instanceof ParamFailure) return { ok: false, error: error.error };
    throw error;
  }
}

/** user:password items of a dfp_users_NAME secret, separated by commas or line breaks. */
function readUsersSecret(name: string, context: ParseContext | undefined): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) fail('usersSecret', `usersSecret names a Docker secret suffix (letters, digits, '_', '.', '-'), got ${quote(name)}`);
  if (context === undefined) fail('usersSecret', 'usersSecret is read from the proxy\'s secrets directory, which this check cannot reach');
  const file = path.join(context.secretsDir, `dfp_users_${name}`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return fail('usersSecret', `usersSecret: there is no readable Docker secret dfp_users_${name} in ${context.secretsDir}; create it (docker secret create dfp_users_${name} ...) and attach it to the proxy service`);
  }
  const items = text.split(/[,\r\n]+/).map((item) => item.trim()).filter((item) => item !== '');
  if (items.length === 0) fail('usersSecret', `usersSecret: the secret dfp_users_${name} holds no user:password item`);
  return items.join(',');
}

function parseOrThrow(raw: RawParams, context: ParseContext | undefined): ParseResult {
  const params: Record<string, string> = {};
  const drafts = new Map<number, DestinationDraft>();
  const draft = (index: number): DestinationDraft => {
    let found = drafts.get(index);
    if (!found) drafts.set(index, (found = { paths: [], domains: [] }));
    return found;
  };
  let name: string | undefined;
  let addressMode: AddressMode | undefined;
  let outboundHostname: string | undefined;
  let timeoutServer: number | undefined;
  let timeoutTunnel: number | undefined;
  let timeoutClient: number | undefined;
  let reqMode: ReqMode = 'http';
  const headers = new Map<HeaderParam, readonly unknown[]>();
  let compressionAlgos: CompressionAlgo[] | undefined;
  let compressionTypes: string[] | undefined;
  let pathRewrites: { search: string; replace: string }[] | undefined;
  let deprecatedSearch: string | undefined;
  let deprecatedReplace: string | undefined;
  let users: string | undefined;
  let usersSecret: string | undefined;
  let usersPassEncrypted = false;
  let ignoreAuthorization = false;
  const methods: { allowedMethods?: string[]; deniedMethods?: string[]; denyHttp?: boolean } = {};
  const conditions: { excludedPaths: string[]; headers: HeaderField[]; userAgents: string[]; domainMatch: DomainMatch | undefined } = {
    excludedPaths: [],
    headers: [],
    userAgents: [],
    domainMatch: undefined,
  };
  const access: { isDefaultBackend?: boolean; allowedIps?: string[]; deniedIps?: string[] } = {};
  let backendExtra: string[] | undefined;
  const ordering: { aclName?: string; connectionMode?: 'http-server-close' | 'httpclose'; discoveryMode?: AddressMode } = {};
  const balancing: { balance?: BalanceAlgorithm; sticky?: boolean } = {};
  const health: HealthDraft = {};
  const tls: {
    httpsOnly?: boolean;
    httpsRedirectCode?: RedirectCode;
    redirectWhenHttpProto?: boolean;
    redirectFromDomains?: string[];
    serviceCert?: string;
    letsencrypt?: boolean;
    sslVerifyNone?: boolean;
  } = {};

  for (const key of Object.keys(raw).sort()) {
    const value = single(key, raw[key]);
    if (value === undefined) continue;
    const match = KEY.exec(key);
    const written = match?.[1];
    const base = written === undefined ? undefined : (ALIASES[written] ?? written);
    if (match === null || base === undefined) {
      return fail(printable(key), `unknown parameter ${quote(key)}; see docs/parameters.md for the parameters Flow Proxy accepts`);
    }
    const index = match[2] === undefined ? 0 : Number(match[2]);
    if (index > MAX_INDEX) fail(key, `${key}: destination indexes go from 1 to ${MAX_INDEX}`);
    const notApplicable = NOT_APPLICABLE_PARAMS[base];
    if (notApplicable !== undefined) fail(key, `${key} is refused: ${notApplicable}`);
    if (UNSUPPORTED_DFP_PARAMS.has(base)) {
      fail(key, `${key} is a Docker Flow Proxy parameter that Flow Proxy does not support yet; remove it (see docs/parameters.md)`);
    }
    if (index > 0 && !DESTINATION_PARAMS.has(base)) {
      fail(key, `${key}: ${base} applies to the whole service and cannot be indexed; send ${base} without a '.N' suffix`);
    }
    params[key] = value;
    if (BOOKKEEPING_PARAMS.has(base)) continue;
    switch (base) {
      case 'serviceName':
        name = checked(key, value, parseServiceName);
        break;
      case 'reqMode':
        if (value !== 'http' && value !== 'tcp' && value !== 'sni') {
          fail(key, `reqMode must be http, tcp (a TCP port routed to the service) or sni (TLS passed through by server name), got ${quote(value)}`);
        }
        reqMode = value;
        break;
      case 'srcPort':
        draft(index).srcPort = checked(key, value, parsePort);
        break;
      case 'serviceGroup':
        draft(index).group = checked(key, value, parseGroupName);
        break;
      case 'balanceGroup':
        draft(index).balanceGroup = checked(key, value, parseBalance);
        break;
      case 'weight':
        draft(index).weight = checked(key, value, (v) => parseCount(v, MAX_WEIGHT));
        break;
      case 'timeoutClient':
        timeoutClient = checked(key, value, (v) => parseSeconds(v));
        break;
      case 'addressMode':
        if (value !== 'vip' && value !== 'tasks') {
          fail(key, `addressMode must be 'vip' (the service name) or 'tasks' (every task IP via tasks.NAME), got ${quote(value)}`);
        }
        addressMode = value;
        break;
      case 'outboundHostname':
        outboundHostname = checked(key, value, parseHostName);
        break;
      case 'timeoutServer':
        timeoutServer = checked(key, value, (v) => parseSeconds(v));
        break;
      case 'timeoutTunnel':
        timeoutTunnel = checked(key, value, (v) => parseSeconds(v));
        break;
      case 'port':
        draft(index).port = checked(key, value, parsePort);
        break;
      case 'httpsPort':
        draft(index).httpsPort = checked(key, value, parsePort);
        break;
      case 'httpsOnly':
      case 'redirectWhenHttpProto':
      case 'letsencrypt':
      case 'sslVerifyNone':
        tls[base] = checked(key, value, parseBoolean);
        break;
      case 'httpsRedirectCode': {
        const code = Number(value);
        if (!/^[0-9]{3}$/.test(value) || !REDIRECT_CODES.includes(code as RedirectCode)) {
          fail(key, `httpsRedirectCode must be one of ${REDIRECT_CODES.join(', ')}, got ${quote(value)}`);
        }
        tls.httpsRedirectCode = code as RedirectCode;
        break;
      }
      case 'redirectFromDomain':
        tls.redirectFromDomains = checked(key, value, (v) => parseList(v, parseDomain));
        if (tls.redirectFromDomains.some((d) => d.startsWith('*.'))) fail(key, 'redirectFromDomain takes exact host names; a wildcard cannot be redirected to one domain');
        break;
      case 'serviceCert':
        if (!CERT_NAME.test(value)) {
          fail(key, `serviceCert must name a certificate (letters, digits, '.', '_', '-', at most 100 characters), got ${quote(value)}`);
        }
        tls.serviceCert = value;
        break;
      case 'servicePath':
        draft(index).paths.push(...checked(key, value, (v) => parseList(v, parsePath)));
        break;
      case 'serviceDomain':
        draft(index).domains.push(...checked(key, value, (v) => parseList(v, parseDomain)));
        break;
      case 'addReqHeader':
      case 'setReqHeader':
      case 'addResHeader':
      case 'setResHeader': {
        if (headers.has(base)) fail(key, `${key} repeats ${base}: addHeader and setHeader are the older names of addReqHeader and setReqHeader; give one of the two`);
        headers.set(base, checked(key, value, (v) => parseList(v, parseHeaderField)));
        break;
      }
      case 'delReqHeader':
      case 'delResHeader':
        headers.set(base, checked(key, value, (v) => parseList(v, parseHeaderName)));
        break;
      case 'allowedMethods':
      case 'deniedMethods':
        methods[base] = unique(checked(key, value, (v) => parseList(v, parseMethod)));
        break;
      case 'denyHttp':
        methods.denyHttp = checked(key, value, parseBoolean);
        break;
      case 'users':
        users = value;
        break;
      case 'usersSecret':
        usersSecret = value;
        break;
      case 'compressionAlgo':
        compressionAlgos = checked(key, value, parseCompressionAlgos);
        break;
      case 'compressionType':
        compressionTypes = checked(key, value, parseMimeTypes);
        break;
      case 'reqPathSearchReplace':
        pathRewrites = checked(key, value, parsePathRewrites);
        break;
      case 'reqPathSearch':
        deprecatedSearch = value;
        break;
      case 'reqPathReplace':
        deprecatedReplace = value;
        break;
      case 'usersPassEncrypted':
        usersPassEncrypted = checked(key, value, parseBoolean);
        break;
      case 'ignoreAuthorization':
        ignoreAuthorization = checked(key, value, parseBoolean);
        break;
      case 'servicePathExclude':
        conditions.excludedPaths = unique(checked(key, value, (v) => parseList(v, parsePath)));
        break;
      case 'serviceHeader':
        conditions.headers = checked(key, value, (v) => parseList(v, parseHeaderCondition));
        break;
      case 'userAgent':
        conditions.userAgents = unique(checked(key, value, (v) => parseList(v, parseUserAgent)));
        break;
      case 'serviceDomainAlgo':
        if (value === 'req.ssl_sni') fail(key, 'serviceDomainAlgo=req.ssl_sni is implied by reqMode=sni, which chooses by the TLS server name; use reqMode=sni');
        if (!(value in DOMAIN_ALGOS)) fail(key, `serviceDomainAlgo must be one of ${Object.keys(DOMAIN_ALGOS).join(', ')}, got ${quote(value)}`);
        conditions.domainMatch = DOMAIN_ALGOS[value];
        break;
      case 'isDefaultBackend':
        access.isDefaultBackend = checked(key, value, parseBoolean);
        break;
      case 'allowedIps':
      case 'deniedIps':
        access[base] = unique(checked(key, value, (v) => parseList(v, parseCidr)));
        break;
      case 'aclName':
        if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value)) fail(key, `aclName orders routes by name: 1-64 letters, digits, '_', '.' or '-', got ${quote(value)}`);
        ordering.aclName = value;
        break;
      case 'checkResolvers':
        // Docker Flow Proxy's switch for HAProxy to follow replicas' addresses at run time, which
        // Flow Proxy always does: either value routes the same way, but it must be a boolean.
        checked(key, value, parseBoolean);
        break;
      case 'discoveryType':
        if (value !== 'DNS' && value !== 'Overlay') fail(key, `discoveryType must be DNS (every task address, as addressMode=tasks) or Overlay (the service's virtual IP, as addressMode=vip), got ${quote(value)}`);
        ordering.discoveryMode = value === 'DNS' ? 'tasks' : 'vip';
        break;
      case 'serviceDomainMatchAll':
        if (checked(key, value, parseBoolean)) conditions.domainMatch = 'dom';
        break;
      case 'xForwardedProto':
        if (!checked(key, value, parseBoolean)) fail(key, 'xForwardedProto=false cannot be honoured: Flow Proxy always sends X-Forwarded-Proto (http or https, as the request arrived); remove the parameter');
        break;
      case 'connectionMode':
        if (!(CONNECTION_MODES as readonly string[]).includes(value)) {
          fail(key, `connectionMode must be one of ${CONNECTION_MODES.join(', ')} (HAProxy 2 removed http-tunnel and forceclose), got ${quote(value)}`);
        }
        if (value !== 'http-keep-alive') ordering.connectionMode = value as 'http-server-close' | 'httpclose';
        break;
      case 'balance':
        balancing.balance = checked(key, value, parseBalance);
        break;
      case 'sessionType':
        // Docker Flow Proxy: any other value meant no sticky sessions.
        if (value !== 'sticky-server') fail(key, `sessionType supports sticky-server (clients pinned to a replica by cookie), got ${quote(value)}; leave it out for no sticky sessions`);
        balancing.sticky = true;
        break;
      case 'healthCheckPath':
        health.path = checked(key, value, parsePath);
        break;
      case 'checkTcp':
        health.tcp = checked(key, value, parseBoolean);
        break;
      case 'healthCheckInterval':
        health.interval = checked(key, value, (v) => parseSeconds(v, 3600));
        break;
      case 'healthCheckRise':
        health.rise = checked(key, value, (v) => parseCount(v, 100));
        break;
      case 'healthCheckFall':
        health.fall = checked(key, value, (v) => parseCount(v, 100));
        break;
      case 'backendExtra':
        if (context?.rawHaproxy !== true) {
          fail(key, 'backendExtra is raw HAProxy configuration, which bypasses every check; Flow Proxy refuses it unless the operator sets ALLOW_RAW_HAPROXY=true (docs/settings.md)');
        }
        backendExtra = checked(key, value, parseRawHaproxy);
        break;
      case 'pathType':
        if (value !== 'path_beg') {
          fail(key, `${key}: only path_beg (path prefix matching) is supported, got ${quote(value)}`);
        }
        draft(index);
        break;
      default:
        if (!SERVICE_PARAMS.has(base)) {
          fail(key, `unknown parameter ${quote(key)}; see docs/parameters.md for the parameters Flow Proxy accepts`);
        }
    }
  }

  if (name === undefined) return fail('serviceName', 'serviceName is required: the name of the Swarm service to route to');

  if (reqMode !== 'http') return parseStream(name, reqMode, drafts, params, { addressMode, outboundHostname, timeoutServer, timeoutClient, balance: balancing.balance, health });
  if (timeoutClient !== undefined) fail('timeoutClient', 'timeoutClient applies to reqMode=tcp and sni services; HTTP clients get TIMEOUT_CLIENT');
  const grouping = groupParamIn(params);
  if (grouping !== undefined) {
    fail(grouping, `${grouping} applies to reqMode=tcp services, whose srcPort a serviceGroup shares; an HTTP service's replicas are balanced with balance`);
  }

  const destinations: Destination[] = [];
  for (const [index, d] of [...drafts.entries()].sort(([a], [b]) => a - b)) {
    const suffix = index === 0 ? '' : `.${index}`;
    if (d.srcPort !== undefined) fail(`srcPort${suffix}`, `srcPort${suffix} gives a tcp or sni service its port; HTTP services are reached on the HTTP and HTTPS ports (set reqMode=tcp or sni, or remove srcPort)`);
    if (d.paths.length === 0 && d.domains.length === 0) {
      fail(
        `servicePath${suffix}`,
        `servicePath${suffix} or serviceDomain${suffix} must be specified: an HTTP service is routed by path prefix, domain, or both`,
        409,
      );
    }
    if (d.port === undefined) {
      fail(`port${suffix}`, `port${suffix} is required: the port ${name} listens on inside the Swarm network`);
    }
    destinations.push({
      index,
      port: d.port,
      paths: unique(d.paths),
      domains: unique(d.domains),
      ...(d.httpsPort === undefined ? {} : { httpsPort: d.httpsPort }),
    });
  }
  if (destinations.length === 0) {
    fail('servicePath', 'servicePath or serviceDomain must be specified: an HTTP service is routed by path prefix, domain, or both', 409);
  }

  checkTlsParams(tls, destinations);
  if (compressionTypes !== undefined && compressionAlgos === undefined) {
    fail('compressionType', 'compressionType says which responses compressionAlgo compresses; set compressionAlgo too');
  }
  checkConditions(conditions, destinations);
  if (ordering.discoveryMode !== undefined) {
    if (addressMode !== undefined && addressMode !== ordering.discoveryMode) fail('discoveryType', `discoveryType and addressMode disagree (${ordering.discoveryMode} vs ${addressMode}); give one of them`);
    addressMode = ordering.discoveryMode;
  }
  if (params.serviceDomainAlgo !== undefined && params.serviceDomainMatchAll !== undefined) {
    fail('serviceDomainMatchAll', 'serviceDomainMatchAll is the older form of serviceDomainAlgo=hdr_dom(host); give one of them');
  }
  if (deprecatedSearch !== undefined || deprecatedReplace !== undefined) {
    if (deprecatedSearch === undefined) fail('reqPathReplace', 'reqPathReplace needs reqPathSearch (or use reqPathSearchReplace=search,replace)');
    if (pathRewrites !== undefined) fail('reqPathSearch', 'give reqPathSearchReplace or the older reqPathSearch/reqPathReplace, not both');
    pathRewrites = checked('reqPathSearch', `${deprecatedSearch},${deprecatedReplace ?? ''}`, parsePathRewrites);
  }
  if (params.usersPassEncrypted !== undefined && users === undefined && usersSecret === undefined) {
    fail('usersPassEncrypted', 'usersPassEncrypted says how the passwords in users or usersSecret are written; set one of them too, or leave it out');
  }
  const credentials = [
    ...(users === undefined ? [] : checked('users', users, (v) => parseCredentials(v, usersPassEncrypted))),
    ...(usersSecret === undefined ? [] : checked('usersSecret', readUsersSecret(usersSecret, context), (v) => parseCredentials(v, usersPassEncrypted))),
  ];
  const repeated = credentials.map((c) => c.user).find((user, i, all) => all.indexOf(user) !== i);
  if (repeated !== undefined) fail('usersSecret', `user ${quote(repeated)} is in both users and usersSecret; keep one`);
  const service: Service = {
    name,
    reqMode,
    destinations,
    ...tls,
    ...(addressMode === undefined ? {} : { addressMode }),
    ...(outboundHostname === undefined ? {} : { outboundHostname }),
    ...(timeoutServer === undefined ? {} : { timeoutServer }),
    ...(timeoutTunnel === undefined ? {} : { timeoutTunnel }),
    ...headerRules(headers),
    ...(methods.allowedMethods === undefined ? {} : { allowedMethods: methods.allowedMethods }),
    ...(methods.deniedMethods === undefined ? {} : { deniedMethods: methods.deniedMethods }),
    ...(methods.denyHttp === true ? { denyHttp: true } : {}),
    ...(pathRewrites === undefined ? {} : { pathRewrites }),
    ...(compressionAlgos === undefined ? {} : { compression: { algos: compressionAlgos, types: compressionTypes } }),
    ...(credentials.length === 0 ? {} : { users: credentials }),
    ...(ignoreAuthorization ? { ignoreAuthorization: true } : {}),
    ...(hasConditions(conditions) ? { conditions } : {}),
    ...(access.isDefaultBackend === true ? { isDefaultBackend: true } : {}),
    ...(access.allowedIps === undefined ? {} : { allowedIps: access.allowedIps }),
    ...(access.deniedIps === undefined ? {} : { deniedIps: access.deniedIps }),
    ...(backendExtra === undefined ? {} : { backendExtra }),
    ...(ordering.aclName === undefined ? {} : { aclName: ordering.aclName }),
    ...(balancing.balance === undefined ? {} : { balance: balancing.balance }),
    ...(balancing.sticky === true ? { sticky: true } : {}),
    ...healthCheckOf(health),
    ...(ordering.connectionMode === undefined ? {} : { connectionMode: ordering.connectionMode }),
  };
  return { ok: true, service, params };
}

function headerRules(parsed: ReadonlyMap<HeaderParam, readonly unknown[]>): Pick<Service, 'requestHeaders' | 'responseHeaders'> {
  const side = (add: HeaderParam, set: HeaderParam, del: HeaderParam): HeaderRules | undefined => {
    if (!parsed.has(add) && !parsed.has(set) && !parsed.has(del)) return undefined;
    return {
      del: (parsed.get(del) ?? []) as string[],
      set: (parsed.get(set) ?? []) as HeaderField[],
      add: (parsed.get(add) ?? []) as HeaderField[],
    };
  };
  const request = side('addReqHeader', 'setReqHeader', 'delReqHeader');
  const response = side('addResHeader', 'setResHeader', 'delResHeader');
  return { ...(request === undefined ? {} : { requestHeaders: request }), ...(response === undefined ? {} : { responseHeaders: response }) };
}

const HEALTH_DEFAULTS = { intervalSeconds: 5, rise: 2, fall: 3 };

interface HealthDraft {
  path?: string;
  tcp?: boolean;
  interval?: number;
  rise?: number;
  fall?: number;
}

function healthCheckOf(health: HealthDraft): Pick<Service, 'healthCheck'> {
  const tcp = health.tcp === true;
  if (health.path === undefined && !tcp) {
    const stray = health.interval !== undefined ? 'healthCheckInterval' : health.rise !== undefined ? 'healthCheckRise' : health.fall !== undefined ? 'healthCheckFall' : undefined;
    if (stray !== undefined) fail(stray, `${stray} tunes a health check; set healthCheckPath (HTTP) or checkTcp=true too`);
    return {};
  }
  if (health.path !== undefined && tcp) fail('checkTcp', 'give healthCheckPath (an HTTP check) or checkTcp=true (a TCP connect check), not both');
  return {
    healthCheck: {
      kind: tcp ? 'tcp' : 'http',
      path: health.path ?? '/',
      intervalSeconds: health.interval ?? HEALTH_DEFAULTS.intervalSeconds,
      rise: health.rise ?? HEALTH_DEFAULTS.rise,
      fall: health.fall ?? HEALTH_DEFAULTS.fall,
    },
  };
}

/** A tcp or sni service: every destination needs srcPort and port; sni ones serviceDomain too. */
function parseStream(
  name: string,
  reqMode: 'tcp' | 'sni',
  drafts: ReadonlyMap<number, DestinationDraft>,
  params: Readonly<Record<string, string>>,
  common: { addressMode?: AddressMode; outboundHostname?: string; timeoutServer?: number; timeoutClient?: number; balance?: BalanceAlgorithm; health: HealthDraft },
): ParseResult {
  const stray = Object.keys(params).find((key) => !STREAM_PARAMS.has(key.replace(/\.[0-9]+$/, '')) && !BOOKKEEPING_PARAMS.has(key));
  if (stray !== undefined) fail(stray, `${stray} applies to HTTP services; a reqMode=${reqMode} service forwards bytes and does not read requests`);
  if (reqMode === 'tcp' && Object.keys(params).some((key) => key.startsWith('serviceDomain'))) {
    fail('serviceDomain', 'serviceDomain chooses among reqMode=sni services sharing a port; a reqMode=tcp service owns its srcPort, or shares it with its serviceGroup');
  }
  if (common.health.path !== undefined) fail('healthCheckPath', `a reqMode=${reqMode} service is checked by TCP connect: use checkTcp=true`);
  const grouping = groupParamIn(params);
  if (reqMode === 'sni' && grouping !== undefined) {
    fail(grouping, `${grouping} applies to reqMode=tcp services; reqMode=sni services sharing a srcPort are told apart by server name, not balanced together`);
  }
  const destinations: Destination[] = [];
  for (const [index, d] of [...drafts.entries()].sort(([a], [b]) => a - b)) {
    const suffix = index === 0 ? '' : `.${index}`;
    if (d.srcPort === undefined) fail(`srcPort${suffix}`, `srcPort${suffix} is required for reqMode=${reqMode}: the proxy port connections arrive on`);
    if (d.port === undefined) fail(`port${suffix}`, `port${suffix} is required: the port ${name} listens on inside the Swarm network`);
    if (reqMode === 'sni' && d.domains.length === 0) fail(`serviceDomain${suffix}`, `serviceDomain${suffix} is required for reqMode=sni: the TLS server names passed to ${name}`);
    const group = membershipOf(d, suffix);
    destinations.push({ index, port: d.port, paths: [], domains: unique(d.domains), srcPort: d.srcPort, ...(group === undefined ? {} : { group }) });
  }
  if (destinations.length === 0) fail('srcPort', `srcPort and port are required for reqMode=${reqMode}`);
  if (common.balance !== undefined && destinations.every((d) => d.group !== undefined)) {
    fail('balance', `balance applies to a port ${name} has of its own, and every destination of ${name} is in a serviceGroup: set the group's algorithm with balanceGroup`);
  }
  const service: Service = {
    name,
    reqMode,
    destinations,
    ...(common.addressMode === undefined ? {} : { addressMode: common.addressMode }),
    ...(common.outboundHostname === undefined ? {} : { outboundHostname: common.outboundHostname }),
    ...(common.timeoutServer === undefined ? {} : { timeoutServer: common.timeoutServer }),
    ...(common.timeoutClient === undefined ? {} : { timeoutClient: common.timeoutClient }),
    ...(common.balance === undefined ? {} : { balance: common.balance }),
    ...healthCheckOf(common.health),
  };
  return { ok: true, service, params: { ...params } };
}

/** The first serviceGroup, balanceGroup or weight parameter given (with its index), if any. */
function groupParamIn(params: Readonly<Record<string, string>>): string | undefined {
  return Object.keys(params).find((key) => GROUP_PARAMS.has(key.replace(/\.[0-9]+$/, '')));
}

/** A tcp destination's serviceGroup membership; balanceGroup and weight tune a group, so they need serviceGroup. */
function membershipOf(d: DestinationDraft, suffix: string): GroupMembership | undefined {
  if (d.group === undefined) {
    if (d.balanceGroup !== undefined) {
      fail(`balanceGroup${suffix}`, `balanceGroup${suffix} sets how the connections of serviceGroup${suffix} are balanced; set serviceGroup${suffix} too, or use balance for a port of the service's own`);
    }
    if (d.weight !== undefined) fail(`weight${suffix}`, `weight${suffix} is the service's share of the connections of serviceGroup${suffix}; set serviceGroup${suffix} too`);
    return undefined;
  }
  return { name: d.group, weight: d.weight ?? 1, ...(d.balanceGroup === undefined ? {} : { balance: d.balanceGroup }) };
}

function hasConditions(conditions: RouteConditions): boolean {
  return conditions.excludedPaths.length > 0 || conditions.headers.length > 0 || conditions.userAgents.length > 0 || conditions.domainMatch !== undefined;
}

function checkConditions(conditions: RouteConditions, destinations: readonly Destination[]): void {
  if (conditions.domainMatch === undefined) return;
  const domains = destinations.flatMap((d) => d.domains);
  if (domains.length === 0) fail('serviceDomainAlgo', 'serviceDomainAlgo says how serviceDomain is compared with the host; set serviceDomain too');
  const wildcard = domains.find((d) => d.startsWith('*.'));
  if (wildcard !== undefined) fail('serviceDomainAlgo', `serviceDomainAlgo cannot apply to the wildcard ${quote(wildcard)}; use hdr_end(host) with the domain without '*' instead`);
}

function checkTlsParams(tls: Partial<Service>, destinations: readonly Destination[]): void {
  const domains = destinations.flatMap((d) => d.domains);
  if (tls.redirectFromDomains !== undefined) {
    const target = domains[0];
    if (target === undefined || target.startsWith('*.')) {
      fail('redirectFromDomain', 'redirectFromDomain needs serviceDomain: old domains are redirected to the first serviceDomain, which must be an exact host name');
    }
    const loop = tls.redirectFromDomains.find((d) => domains.includes(d));
    if (loop !== undefined) fail('redirectFromDomain', `redirectFromDomain ${quote(loop)} is also a serviceDomain of this service; a domain cannot redirect to itself`);
  }
  if (tls.letsencrypt === true) {
    if (domains.length === 0) fail('letsencrypt', 'letsencrypt=true needs serviceDomain: certificates are issued for the service\'s domains');
    const wildcard = domains.find((d) => d.startsWith('*.'));
    if (wildcard !== undefined) {
      fail('letsencrypt', `letsencrypt=true cannot cover ${quote(wildcard)}: wildcard certificates need a DNS-01 challenge, which Flow Proxy does not answer; upload the certificate instead (PUT /v1/docker-flow-proxy/cert)`);
    }
  }
  if (tls.sslVerifyNone !== undefined && !destinations.some((d) => d.httpsPort !== undefined)) {
    fail('sslVerifyNone', 'sslVerifyNone applies to replicas reached over TLS; set httpsPort too');
  }
  if (tls.httpsRedirectCode !== undefined && tls.httpsOnly === false && tls.redirectWhenHttpProto !== true) {
    fail('httpsRedirectCode', 'httpsRedirectCode sets the status of the HTTPS redirect, which httpsOnly=false turns off; remove one of them');
  }
}

/** A host name or an IPv4 address the replicas are reached at: a domain without wildcard. */
function parseHostName(raw: string): string {
  const host = parseDomain(raw);
  if (host.startsWith('*.')) throw new InvalidValue(`must be one host name or IPv4 address, not a wildcard, got ${quote(raw)}`);
  return host;
}

function parseBoolean(raw: string): boolean {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new InvalidValue(`must be true or false, got ${quote(raw)}`);
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function printable(key: string): string {
  return JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}...` : key).slice(1, -1);
}
