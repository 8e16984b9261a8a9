/**
 * The control API, compatible with Docker Flow Proxy: same paths, parameter names, status codes
 * and response fields (Status, Message, ServiceName, ...), so existing scripts and the Swarm
 * Listener work unchanged. It only talks to the route table.
 */
import http from 'node:http';
import Fastify, { LogController } from 'fastify';
import type { FastifyReply } from 'fastify';
import type { Logger } from '../log.js';
import { authHook } from './auth.js';
import type { ApiCredentials } from './auth.js';
import { parseServiceName, InvalidValue } from '../routes/grammar.js';
import type { Service } from '../routes/model.js';
import { parseServiceParams } from '../routes/params.js';
import type { RawParams } from '../routes/params.js';
import type { DataPlane } from '../planes/plane.js';
import type { ChangeOutcome, RouteTable } from '../table/table.js';
import type { CertificateTable } from '../tls/certificate-table.js';
import type { AcmeManager } from '../tls/acme.js';

export interface ApiDependencies {
  readonly credentials: ApiCredentials;
  readonly table: RouteTable;
  readonly certificates: CertificateTable;
  readonly acme: Pick<AcmeManager, 'status'>;
  /** Shown as Docker Flow Proxy's CertsDir. */
  readonly certsDir: string | undefined;
  readonly plane: DataPlane;
  readonly log: Logger;
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
    ServiceCert: service.serviceCert ?? '',
    SslVerifyNone: service.sslVerifyNone === true,
    LetsEncrypt: service.letsencrypt === true,
    ServiceDest: service.destinations.map((d) => ({
      Index: d.index,
      Port: String(d.port),
      HttpsPort: d.httpsPort ?? 0,
      ServicePath: d.paths,
      ServiceDomain: d.domains,
      PathType: 'path_beg',
      HttpsOnly: service.httpsOnly === true,
      HttpsRedirectCode: service.httpsRedirectCode === undefined ? '' : String(service.httpsRedirectCode),
      RedirectFromDomain: service.redirectFromDomains ?? [],
    })),
  };
}

/** Certificate bundles may be larger than route requests; pem.ts refuses oversized ones by name. */
const CERT_BODY_LIMIT = 1024 * 1024;

export function buildApi({ credentials, table, certificates, acme, certsDir, plane, log }: ApiDependencies) {
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
          status: reply.statusCode,
        },
        'control API change request',
      );
    }
  });

  app.setNotFoundHandler((request, reply) =>
    nok(reply, 404, `no such endpoint ${request.method} ${request.url.split('?')[0]}; see docs/api.md`),
  );
  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) log.error({ err: error }, 'control API error');
    return nok(reply, status, status === 500 ? `internal error: ${error.message}` : error.message);
  });

  app.get(`${PREFIX}/reconfigure`, async (request, reply) => {
    const parsed = parseServiceParams(request.query as RawParams);
    if (!parsed.ok) {
      const name = (request.query as Record<string, unknown>).serviceName;
      return nok(reply, parsed.error.status, parsed.error.message, typeof name === 'string' ? name : undefined);
    }
    const { service, params } = parsed;
    const outcome = await table.upsert({ service, params, source: 'api' });
    return outcomeReply(reply, outcome, service.name, dfpService(service));
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
    return outcomeReply(reply, await table.remove(name), name);
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

  const certName = (request: { query: unknown }): string | undefined => {
    const raw = (request.query as Record<string, unknown>).certName;
    return typeof raw === 'string' ? raw : undefined;
  };

  app.put(`${PREFIX}/cert`, { bodyLimit: CERT_BODY_LIMIT }, async (request, reply) => {
    const name = certName(request);
    if (name === undefined) return nok(reply, 400, 'certName is required (given once): the name the certificate is stored and listed under');
    const body = request.body;
    if (typeof body !== 'string' || body.length === 0) {
      return nok(reply, 400, 'the body must be the PEM bundle: the certificate chain and its private key (curl --data-binary @bundle.pem)');
    }
    const outcome = await certificates.put(name, body, 'api');
    if (!outcome.ok) return nok(reply, outcome.status, outcome.message);
    return reply.send({ Status: 'OK', Message: '', CertName: name });
  });

  app.delete(`${PREFIX}/cert`, async (request, reply) => {
    const name = certName(request);
    if (name === undefined) return nok(reply, 400, 'certName is required (given once): the name of the certificate to remove');
    const outcome = await certificates.remove(name);
    if (!outcome.ok) return nok(reply, outcome.status, outcome.message);
    return reply.send({ Status: 'OK', Message: '', CertName: name });
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

  app.get(`${PREFIX}/ping`, async (_request, reply) => reply.send({ Status: 'OK', Message: '' }));

  app.get(`${PREFIX}/status`, async (_request, reply) => {
    const status = plane.status();
    return reply.code(status.ready ? 200 : 503).send({ Status: status.ready ? 'OK' : 'NOK', Message: status.lastError ?? '', Plane: status });
  });

  return app;
}
