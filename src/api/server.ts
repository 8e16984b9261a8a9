/**
 * The control API, compatible with Docker Flow Proxy: same paths, parameter names, status codes
 * and response fields (Status, Message, ServiceName, ...), so existing scripts and the Swarm
 * Listener work unchanged. It talks to the route and certificate tables; changes sent by hand go
 * through replication (src/peers/replication.ts), which makes them and passes them to the other replicas.
 */
import http from 'node:http';
import Fastify, { LogController } from 'fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log.js';
import { authHook } from './auth.js';
import type { ApiCredentials } from './auth.js';
import { parseServiceName, InvalidValue } from '../routes/grammar.js';
import type { Service, ServiceEntry } from '../routes/model.js';
import { parseServiceParams } from '../routes/params.js';
import type { ParseContext, RawParams } from '../routes/params.js';
import { STAMP_HEADER } from '../peers/distribute.js';
import type { PeerDistributor, PeerResult } from '../peers/distribute.js';
import { parseStamp } from '../peers/ledger.js';
import type { Stamp } from '../peers/ledger.js';
import { replicationRoutes } from '../peers/http.js';
import type { Peers } from '../peers/peers.js';
import type { Replication } from '../peers/replication.js';
import type { DataPlane } from '../planes/plane.js';
import { refusalSummary } from '../table/draft.js';
import type { BulkOutcome, ChangeOutcome, EntryRefusal, RouteTable } from '../table/table.js';
import type { CertificateTable } from '../tls/certificate-table.js';
import type { AcmeManager } from '../tls/acme.js';
import type { Metrics } from '../metrics/metrics.js';
import { statsCsv } from '../metrics/dfp-stats.js';
import type { DestinationStats } from '../metrics/dfp-stats.js';
import type { Dashboard } from '../dashboard/dashboard.js';
import { dashboardRoutes } from '../dashboard/http.js';

export interface ApiDependencies {
  readonly credentials: ApiCredentials;
  readonly table: RouteTable;
  readonly certificates: CertificateTable;
  readonly acme: Pick<AcmeManager, 'status'>;
  /** Shown as Docker Flow Proxy's CertsDir. */
  readonly certsDir: string | undefined;
  readonly plane: DataPlane;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** What route parsing needs from the settings (usersSecret's secrets directory). */
  readonly parseContext: ParseContext;
  /** The web dashboard at / (docs/dashboard.md); none when undefined. */
  readonly dashboard?: Dashboard;
  /** Changes sent by hand go through it, so the other replicas get them (src/peers/replication.ts). */
  readonly replication: Replication;
  readonly peers: Peers;
  /** Sends distribute=true changes to the proxy's other replicas at once (src/peers/distribute.ts). */
  readonly distributor: PeerDistributor;
}

const PREFIX = '/v1/docker-flow-proxy';

interface DfpReply {
  Status: 'OK' | 'NOK';
  Message: string;
  ServiceName?: string;
  [field: string]: unknown;
}

function nok(reply: FastifyReply, status: number, message: string, serviceName?: string) {
  const body: DfpReply = { Status: 'NOK', Message: message };
  if (serviceName !== undefined) body.ServiceName = serviceName;
  return reply.code(status).send(body);
}

function outcomeReply(reply: FastifyReply, outcome: ChangeOutcome, serviceName: string, extra: Record<string, unknown> = {}) {
  if (!outcome.ok) return nok(reply, outcome.status, outcome.message, serviceName);
  return reply.code(200).send({ Status: 'OK', Message: '', ServiceName: serviceName, ...extra });
}

/** The Docker Flow Proxy shape of a service, as its API returns it. */
function dfpService(service: Service): Record<string, unknown> {
  return {
    ReqMode: service.reqMode,
    AddressMode: service.addressMode ?? '',
    TimeoutServer: service.timeoutServer === undefined ? '' : String(service.timeoutServer),
    TimeoutTunnel: service.timeoutTunnel === undefined ? '' : String(service.timeoutTunnel),
    TimeoutClient: service.timeoutClient === undefined ? '' : String(service.timeoutClient),
    ServiceCert: service.serviceCert ?? '',
    SslVerifyNone: service.sslVerifyNone === true,
    LetsEncrypt: service.letsencrypt === true,
    ServiceDest: service.destinations.map((d) => ({
      Index: d.index,
      Port: String(d.port),
      HttpsPort: d.httpsPort ?? 0,
      SrcPort: d.srcPort ?? 0,
      ServiceGroup: d.group?.name ?? '',
      BalanceGroup: d.group?.balance ?? '',
      Weight: d.group?.weight ?? 1,
      ServicePath: d.paths,
      ServiceDomain: d.domains,
      PathType: 'path_beg',
      HttpsOnly: service.httpsOnly === true,
      HttpsRedirectCode: service.httpsRedirectCode === undefined ? '' : String(service.httpsRedirectCode),
      RedirectWhenHttpProto: service.redirectWhenHttpProto === true,
      RedirectFromDomain: service.redirectFromDomains ?? [],
    })),
  };
}

/** Certificate bundles may be larger than route requests; pem.ts refuses oversized ones by name. */
const CERT_BODY_LIMIT = 1024 * 1024;
/** Enough for 10,000 services with many parameters each. */
const BULK_BODY_LIMIT = 32 * 1024 * 1024;
const BULK_RECONFIGURE_SHAPE = '{"services":[{"serviceName":"a","servicePath":"/a","port":"8080"}, ...]}';
const BULK_REMOVE_SHAPE = '{"serviceNames":["a","b"]}';

type JsonBody = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly message: string };

function jsonBody(body: unknown, shape: string): JsonBody {
  if (typeof body !== 'string' || body.trim() === '') return { ok: false, message: `the body is empty; send JSON of the shape ${shape}` };
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch (error) {
    return { ok: false, message: `the body is not valid JSON (${(error as Error).message}); send JSON of the shape ${shape}` };
  }
}

/** The one array field of a bulk body, or undefined when the body has another shape. */
function arrayField(value: unknown, field: string): unknown[] | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  const list = record[field];
  return Array.isArray(list) && Object.keys(record).length === 1 ? list : undefined;
}

/** One entry of a bulk reconfigure body as query-string parameters: JSON numbers and booleans become strings. */
function entryParams(entry: unknown): { ok: true; params: RawParams } | { ok: false; message: string } {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    return { ok: false, message: `each entry of services must be an object of reconfigure parameters, such as {"serviceName":"a","servicePath":"/a","port":"8080"}` };
  }
  // No prototype: a "__proto__" field is kept, and refused as an unknown parameter.
  const params = Object.create(null) as Record<string, string>;
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value === 'string') params[key] = value;
    else if (typeof value === 'number' || typeof value === 'boolean') params[key] = String(value);
    else {
      const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : 'an object';
      return { ok: false, message: `${key.slice(0, 80)} must be a string, number or boolean, got ${got}; send lists as one comma-separated string, as in the query string` };
    }
  }
  return { ok: true, params };
}

function nameOf(entry: unknown): string {
  const name = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>).serviceName : undefined;
  return typeof name === 'string' ? name.slice(0, 80) : '';
}

interface BulkRefusal {
  readonly Index: number;
  readonly ServiceName: string;
  readonly Status: number;
  readonly Message: string;
}

function bulkRefused(reply: FastifyReply, refused: readonly EntryRefusal[], total: number) {
  const status = refused.every((r) => r.status === 409) ? 409 : 400;
  const Refused: BulkRefusal[] = refused.map((r) => ({ Index: r.index, ServiceName: r.name, Status: r.status, Message: r.message }));
  return reply.code(status).send({ Status: 'NOK', Message: refusalSummary(refused, total), Refused });
}

function bulkReply(reply: FastifyReply, outcome: BulkOutcome, total: number, indexes: (position: number) => number) {
  if (outcome.ok) return reply.send({ Status: 'OK', Message: '', Services: total, Changed: outcome.changed, Version: outcome.version });
  if (outcome.refused.length === 0) return reply.code(outcome.status).send({ Status: 'NOK', Message: outcome.message, Refused: [] });
  return bulkRefused(reply, outcome.refused.map((r) => ({ ...r, index: indexes(r.index) })), total);
}

export function buildApi({ credentials, table, certificates, acme, certsDir, plane, metrics, log, dashboard, parseContext, replication, peers, distributor }: ApiDependencies) {
  const app = Fastify({
    loggerInstance: log,
    bodyLimit: 64 * 1024,
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: true,
    // Node's default 16 KiB would answer a long query string with a bare 431; allow enough to
    // answer with a JSON message naming the oversized parameter instead.
    serverFactory: (handler) => http.createServer({ maxHeaderSize: 1024 * 1024 }, handler),
  });

  app.addHook('onRequest', authHook(credentials));
  /** Services in a bulk request, for the audit line (the names would make it as long as the body). */
  const bulkSizes = new WeakMap<object, number>();
  app.addHook('onResponse', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (path.endsWith('/reconfigure') || path.endsWith('/remove') || path.endsWith('/reload') || (path.endsWith('/cert') && request.method !== 'GET')) {
      const { serviceName, certName } = request.query as Record<string, unknown>;
      log.info(
        {
          audit: true,
          remote: request.ip,
          endpoint: path,
          method: request.method,
          serviceName: typeof serviceName === 'string' ? serviceName.slice(0, 80) : undefined,
          certName: typeof certName === 'string' ? certName.slice(0, 80) : undefined,
          services: bulkSizes.get(request),
          status: reply.statusCode,
        },
        'control API change request',
      );
    }
  });

  app.setNotFoundHandler((request, reply) =>
    nok(reply, 404, `no such endpoint ${request.method} ${request.url.split('?')[0]}; see docs/api.md`),
  );
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) log.error({ err: error }, 'control API error');
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return nok(reply, status, `the body is larger than ${request.routeOptions.bodyLimit} bytes, the limit of ${request.method} ${request.url.split('?')[0]}; send it in several requests`);
    }
    return nok(reply, status, status === 500 ? `internal error: ${error.message}` : error.message);
  });

  /** With distribute=true, the change goes to the other replicas too, with its stamp; their answers are in Replicas. */
  const distributed = async (
    request: FastifyRequest,
    endpoint: 'reconfigure' | 'remove' | 'cert',
    stamp: Stamp | undefined,
    body?: string,
  ): Promise<{ Replicas: PeerResult[] } | undefined> => {
    const raw = request.query as Record<string, unknown>;
    if (raw.distribute !== 'true') return undefined;
    const strings = Object.fromEntries(Object.entries(raw).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
    const method = request.method === 'PUT' || request.method === 'DELETE' ? request.method : 'GET';
    return { Replicas: await distributor.distribute(method, `${PREFIX}/${endpoint}`, strings, stamp, body) };
  };

  /** The stamp a peer passing a change on gives it; undefined for a change sent by a client. */
  const peerStamp = (request: FastifyRequest): Stamp | undefined | Error => {
    const header = request.headers[STAMP_HEADER];
    if (header === undefined) return undefined;
    const stamp = typeof header === 'string' ? parseStamp(header) : undefined;
    return stamp ?? new Error(`the ${STAMP_HEADER} header must be <milliseconds>@<replica id>, as replicas send it to each other; leave it out`);
  };

  app.get(`${PREFIX}/reconfigure`, async (request, reply) => {
    const parsed = parseServiceParams(request.query as RawParams, parseContext);
    if (!parsed.ok) {
      const name = (request.query as Record<string, unknown>).serviceName;
      return nok(reply, parsed.error.status, parsed.error.message, typeof name === 'string' ? name : undefined);
    }
    const { service, params } = parsed;
    const stamp = peerStamp(request);
    if (stamp instanceof Error) return nok(reply, 400, stamp.message, service.name);
    const outcome = await replication.upsert({ service, params, source: 'api' }, stamp);
    const replicas = outcome.ok ? await distributed(request, 'reconfigure', replication.stampOf('route', service.name)) : undefined;
    return outcomeReply(reply, outcome, service.name, { ...dfpService(service), ...replicas });
  });

  app.get(`${PREFIX}/remove`, async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const unknown = Object.keys(query).filter((key) => key !== 'serviceName' && key !== 'distribute');
    if (unknown.length > 0) {
      return nok(reply, 400, `remove accepts serviceName (and distribute) only; unexpected parameter ${JSON.stringify(unknown[0]?.slice(0, 80))}`);
    }
    const raw = query.serviceName;
    if (typeof raw !== 'string') return nok(reply, 400, 'serviceName is required (given once): the name of the service to stop routing');
    let name: string;
    try {
      name = parseServiceName(raw);
    } catch (error) {
      if (error instanceof InvalidValue) return nok(reply, 400, `serviceName: ${error.message}`);
      throw error;
    }
    const stamp = peerStamp(request);
    if (stamp instanceof Error) return nok(reply, 400, stamp.message, name);
    const outcome = await replication.remove(name, stamp);
    const replicas = outcome.ok ? await distributed(request, 'remove', replication.stampOf('route', name)) : undefined;
    return outcomeReply(reply, outcome, name, replicas);
  });

  app.post(`${PREFIX}/reconfigure`, { bodyLimit: BULK_BODY_LIMIT }, async (request, reply) => {
    const body = jsonBody(request.body, BULK_RECONFIGURE_SHAPE);
    if (!body.ok) return nok(reply, 400, body.message);
    const services = arrayField(body.value, 'services');
    if (services === undefined) {
      return nok(reply, 400, `the body must be an object with one field, services: a list of reconfigure parameters per service, ${BULK_RECONFIGURE_SHAPE}`);
    }
    bulkSizes.set(request, services.length);
    const refused: EntryRefusal[] = [];
    const entries: ServiceEntry[] = [];
    /** Body index of each entry passed to the table. */
    const indexes: number[] = [];
    services.forEach((raw, index) => {
      const params = entryParams(raw);
      if (!params.ok) {
        refused.push({ index, name: nameOf(raw), status: 400, message: params.message });
        return;
      }
      const parsed = parseServiceParams(params.params, parseContext);
      if (!parsed.ok) {
        refused.push({ index, name: nameOf(raw), status: parsed.error.status, message: parsed.error.message });
        return;
      }
      entries.push({ service: parsed.service, params: parsed.params, source: 'api' });
      indexes.push(index);
    });
    const bodyIndex = (position: number) => indexes[position] ?? position;
    if (refused.length > 0) {
      // Refused anyway: also name the valid entries the table would refuse.
      const more = table.refusalsFor(entries).map((r) => ({ ...r, index: bodyIndex(r.index) }));
      return bulkRefused(reply, [...refused, ...more].sort((a, b) => a.index - b.index), services.length);
    }
    return bulkReply(reply, await replication.upsertMany(entries), services.length, bodyIndex);
  });

  app.post(`${PREFIX}/remove`, { bodyLimit: BULK_BODY_LIMIT }, async (request, reply) => {
    const body = jsonBody(request.body, BULK_REMOVE_SHAPE);
    if (!body.ok) return nok(reply, 400, body.message);
    const raw = arrayField(body.value, 'serviceNames');
    if (raw === undefined) return nok(reply, 400, `the body must be an object with one field, serviceNames: the names of the services to stop routing, ${BULK_REMOVE_SHAPE}`);
    bulkSizes.set(request, raw.length);
    const refused: EntryRefusal[] = [];
    const names: string[] = [];
    raw.forEach((value, index) => {
      if (typeof value !== 'string') {
        refused.push({ index, name: '', status: 400, message: `each entry of serviceNames must be a service name (a string), got ${JSON.stringify(value).slice(0, 80)}` });
        return;
      }
      try {
        names.push(parseServiceName(value));
      } catch (error) {
        if (!(error instanceof InvalidValue)) throw error;
        refused.push({ index, name: value.slice(0, 80), status: 400, message: `serviceName: ${error.message}` });
      }
    });
    if (refused.length > 0) return bulkRefused(reply, refused, raw.length);
    return bulkReply(reply, await replication.removeMany(names), raw.length, (position) => position);
  });

  app.get(`${PREFIX}/reload`, async (_request, reply) => {
    const outcome = await table.reloadPlane();
    if (!outcome.ok) return nok(reply, outcome.status, outcome.message);
    return reply.send({ Status: 'OK', Message: '' });
  });

  app.get(`${PREFIX}/config`, async (request, reply) => {
    const type = (request.query as Record<string, unknown>).type;
    if (type === 'json') {
      const services: Record<string, unknown> = {};
      for (const [name, entry] of table.snapshot().services) {
        services[name] = { ServiceName: name, Source: entry.source, ...dfpService(entry.service) };
      }
      return reply.send(services);
    }
    if (type !== undefined && type !== 'text') return nok(reply, 400, `type must be json or text, got ${JSON.stringify(String(type).slice(0, 40))}`);
    return reply.type('text/plain; charset=utf-8').send(await plane.describe());
  });

  // Docker Flow Proxy's clients send the bundle with curl --data-binary (any content type).
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: CERT_BODY_LIMIT }, (_request, body, done) => done(null, body));
  // Bodies stay text whatever their type: the bulk routes parse JSON themselves, to answer a
  // malformed body with the shape they expect.
  app.removeContentTypeParser(['application/json', 'text/plain']);

  /** certName, or the refusal of a query that lacks it or has a parameter the endpoint does not take. */
  const certQuery = (request: FastifyRequest, missing: string): { name: string } | { refusal: string } => {
    const query = request.query as Record<string, unknown>;
    const unknown = Object.keys(query).find((key) => key !== 'certName' && key !== 'distribute');
    if (unknown !== undefined) return { refusal: `${request.method} cert accepts certName (and distribute) only; unexpected parameter ${JSON.stringify(unknown.slice(0, 80))}` };
    return typeof query.certName === 'string' ? { name: query.certName } : { refusal: missing };
  };

  app.put(`${PREFIX}/cert`, { bodyLimit: CERT_BODY_LIMIT }, async (request, reply) => {
    const query = certQuery(request, 'certName is required (given once): the name the certificate is stored and listed under');
    if ('refusal' in query) return nok(reply, 400, query.refusal);
    const body = request.body;
    if (typeof body !== 'string' || body.length === 0) {
      return nok(reply, 400, 'the body must be the PEM bundle: the certificate chain and its private key (curl --data-binary @bundle.pem)');
    }
    const stamp = peerStamp(request);
    if (stamp instanceof Error) return nok(reply, 400, stamp.message);
    const outcome = await replication.putCertificate(query.name, body, stamp);
    if (!outcome.ok) return nok(reply, outcome.status, outcome.message);
    const replicas = await distributed(request, 'cert', replication.stampOf('cert', query.name), body);
    return reply.send({ Status: 'OK', Message: '', CertName: query.name, ...replicas });
  });

  app.delete(`${PREFIX}/cert`, async (request, reply) => {
    const query = certQuery(request, 'certName is required (given once): the name of the certificate to remove');
    if ('refusal' in query) return nok(reply, 400, query.refusal);
    const stamp = peerStamp(request);
    if (stamp instanceof Error) return nok(reply, 400, stamp.message);
    const outcome = await replication.removeCertificate(query.name, stamp);
    if (!outcome.ok) return nok(reply, outcome.status, outcome.message);
    const replicas = await distributed(request, 'cert', replication.stampOf('cert', query.name));
    return reply.send({ Status: 'OK', Message: '', CertName: query.name, ...replicas });
  });

  app.get(`${PREFIX}/certs`, async (_request, reply) =>
    reply.send({
      Status: 'OK',
      Message: '',
      Certs: certificates.describe().map((c) => ({
        ServiceName: c.name,
        CertsDir: certsDir ?? '',
        CertContent: c.chainPem,
        Source: c.source,
        Default: c.default,
        Names: c.names,
        NotBefore: c.notBefore,
        NotAfter: c.notAfter,
        Subject: c.subject,
        Issuer: c.issuer,
        SerialNumber: c.serialNumber,
        Fingerprint256: c.fingerprint256,
      })),
      Acme: acme.status().map((s) => ({
        Service: s.key,
        Certificate: s.certificate,
        Domains: s.domains,
        State: s.state,
        LastError: s.lastError ?? '',
        NextAttemptAt: s.nextAttemptAt?.toISOString() ?? '',
        NotAfter: s.notAfter?.toISOString() ?? '',
      })),
    }),
  );

  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.scrape()));

  app.get(`${PREFIX}/metrics`, async (_request, reply) => {
    await metrics.refresh();
    const replicas = await metrics.replicaCounts();
    const rows: DestinationStats[] = [];
    for (const { service } of table.snapshot().services.values()) {
      for (const destination of service.destinations) {
        rows.push({
          service: service.name,
          port: destination.port,
          replicas: replicas.get(`${service.name} ${destination.index}`) ?? 0,
          traffic: metrics.trafficSoFar(service.name, destination.index),
        });
      }
    }
    return reply.type('text/csv; charset=utf-8').send(statsCsv(rows));
  });

  app.get(`${PREFIX}/ping`, async (_request, reply) => reply.send({ Status: 'OK', Message: '' }));

  app.get(`${PREFIX}/status`, async (_request, reply) => {
    const status = plane.status();
    // A replica serves the full table only once it caught up with its peers.
    const ready = status.ready && replication.ready;
    const message = status.lastError ?? (replication.ready ? '' : 'catching up with the other replicas of the proxy');
    return reply.code(ready ? 200 : 503).send({ Status: ready ? 'OK' : 'NOK', Message: message, Plane: status, Replicas: { CaughtUp: replication.ready } });
  });

  void app.register(replicationRoutes(replication, peers, plane, credentials));

  if (dashboard !== undefined) void app.register(dashboardRoutes(dashboard));

  return app;
}
