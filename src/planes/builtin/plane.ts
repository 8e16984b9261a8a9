/**
 * The built-in data plane: the same routing as the HAProxy plane (src/routes/match.ts) served by
 * Node itself, for machines without HAProxy. A new table is swapped in with one assignment, so
 * route changes never close a client connection.
 */
import http from 'node:http';
import type http2 from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { AddressBook } from '../../addresses/book.js';
import { backendHost } from '../../addresses/names.js';
import { normalizeHost, RouteIndex } from '../../routes/match.js';
import type { Destination, RouteTableSnapshot, Service } from '../../routes/model.js';
import { AUTH_REALM, effectiveCompression, requiredUsers, routesOf } from '../../routes/model.js';
import type { Settings } from '../../settings/settings.js';
import { proxyPorts } from '../../settings/settings.js';
import type { CertificateSet } from '../../tls/model.js';
import { checkChallenge } from '../../tls/challenge.js';
import { certificatePins } from '../../tls/pins.js';
import type { DataPlane, PlaneStatus } from '../plane.js';
import { PlaneRejection } from '../plane.js';
import { errorAnswer, Forwarder, hostOf, isHttp2, originForm, pathOf, plainAnswer, policyRefusal, refusal } from './proxy.js';
import { compileHeaderEdits } from './headers.js';
import { BasicAuthCheck } from './auth.js';
import type { Arrival, Target } from './proxy.js';
import { CertificateContexts } from './tls.js';
import { Clients } from './client.js';
import { Balancer } from './balancer.js';
import { StreamPorts } from './streams.js';
import { streamConflict } from '../../routes/listeners.js';
import { HealthMonitor } from '../../health/monitor.js';
import { destinationHealth, forgetRemoved } from '../../health/destination.js';
import { acceptProxyProtocol } from './proxy-protocol.js';
import type { SecureServer } from './tls.js';
import { UpstreamPool } from './upstream.js';
import { StatsPage } from './stats.js';
import { TrafficObserver } from './observe.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { AccessLog } from '../../logs/access-log.js';

interface Serving {
  readonly snapshot: RouteTableSnapshot;
  readonly index: RouteIndex;
  /** Updated in place with each table (build). */
  readonly targets: Map<Destination, Target>;
  /** redirectFromDomain: old host -> new host. */
  readonly redirects: Map<string, string>;
}

const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
/** Header fields a request may carry (HAProxy's default limit is 101). */
const MAX_HEADERS = 100;

function redirect(res: http.ServerResponse, status: number, location: string): void {
  res.writeHead(status, { location, 'content-length': 0, 'cache-control': 'no-cache' });
  res.end();
}

/** The ':port' suffix of a Host value, or ''. */
function portSuffix(host: string): string {
  const colon = host.lastIndexOf(':');
  return colon === -1 || host.endsWith(']') ? '' : host.slice(colon);
}

/** The last comma-separated value of a header, lower-cased (what HAProxy's req.hdr() gives). */
function lastValue(header: string | string[] | undefined): string | undefined {
  const joined = Array.isArray(header) ? header.join(',') : header;
  return joined?.split(',').pop()?.trim().toLowerCase();
}

export class BuiltinPlane implements DataPlane {
  readonly kind = 'builtin' as const;
  private serving: Serving;
  /** Each traffic server, and what listens for it: itself, or the PROXY protocol reader in front of it. */
  private readonly servers: { readonly server: http.Server | SecureServer; readonly listener: NetServer }[] = [];
  private readonly contexts: CertificateContexts;
  private certificates: CertificateSet | undefined;
  private readonly challenges = new Map<string, string>();
  /** Client connections that sent bytes Node could not parse: nothing more is forwarded from them. */
  private readonly broken = new WeakSet<object>();
  /** Responses in progress per client connection (an HTTP/1.1 socket or an HTTP/2 session). */
  private readonly inFlight = new WeakMap<object, Set<http.ServerResponse>>();
  private readonly pool = new UpstreamPool();
  private readonly forwarder: Forwarder;
  private readonly clients: Clients;
  private readonly health: HealthMonitor;
  private readonly streams: StreamPorts;
  private readonly stats: StatsPage | undefined;

  private readonly observer: TrafficObserver;

  constructor(
    private readonly settings: Settings,
    private readonly book: AddressBook,
    private readonly metrics: Metrics,
    accessLog: AccessLog | undefined,
  ) {
    this.observer = new TrafficObserver(accessLog);
    metrics.onScrape(() => this.countReplicas());
    this.clients = new Clients(settings.trustedProxies);
    // The built-in plane asks for healthy replicas on each request: nothing to re-sync on a change.
    this.health = new HealthMonitor({ onChange: () => undefined });
    this.forwarder = new Forwarder(this.book, this.pool, settings.forwardedHeader, settings.errorPages, this.clients, this.health);
    this.streams = new StreamPorts(settings, book, this.health);
    this.stats = settings.stats === undefined ? undefined : new StatsPage(settings.stats);
    this.contexts = new CertificateContexts(settings.tls);
    this.serving = this.build({ version: 0, services: new Map() }, undefined);
  }

  /**
   * The next Serving from the previous one: services that did not change (the same objects in
   * both tables) keep their targets and index entries, so a change costs what changed, not the
   * table. Request counts live in the metrics' traffic series, so a route change keeps them.
   */
  private build(snapshot: RouteTableSnapshot, previous: Serving | undefined): Serving {
    if (previous === undefined) {
      const serving: Serving = { snapshot, index: new RouteIndex(snapshot), targets: new Map(), redirects: new Map() };
      for (const { service } of snapshot.services.values()) this.addService(serving, service);
      return serving;
    }
    // Matching is synchronous: no request sees the maps half-updated.
    for (const [name, { service }] of previous.snapshot.services) {
      if (snapshot.services.get(name)?.service === service) continue;
      for (const destination of service.destinations) previous.targets.delete(destination);
      for (const from of service.redirectFromDomains ?? []) previous.redirects.delete(from);
      this.book.unwant(backendHost(service, this.settings).name);
    }
    for (const [name, { service }] of snapshot.services) {
      if (previous.snapshot.services.get(name)?.service !== service) this.addService(previous, service);
    }
    previous.index.update(previous.snapshot, snapshot);
    forgetRemoved(this.health, previous.snapshot, snapshot);
    return { ...previous, snapshot };
  }

  private addService(serving: Serving, service: Service): void {
    this.book.want(backendHost(service, this.settings));
    const firstDomain = service.destinations.flatMap((d) => d.domains)[0];
    if (firstDomain !== undefined) for (const from of service.redirectFromDomains ?? []) serving.redirects.set(from, firstDomain);
    for (const destination of service.destinations) {
      serving.targets.set(destination, this.target(service, destination));
    }
  }

  private target(service: Service, destination: Destination): Target {
    const users = requiredUsers(service, this.settings.users);
    const compression = effectiveCompression(service, this.settings.compression);
    return {
      service,
      destination,
      dnsName: backendHost(service, this.settings).name,
      port: destination.port,
      timeoutServerMs: (service.timeoutServer ?? this.settings.timeouts.server) * 1000,
      timeoutConnectMs: this.settings.timeouts.connect * 1000,
      timeoutTunnelMs: (service.timeoutTunnel ?? this.settings.timeouts.tunnel) * 1000,
      ...(destination.httpsPort === undefined ? {} : { tls: { port: destination.httpsPort, servername: service.name, verify: service.sslVerifyNone !== true } }),
      traffic: this.metrics.traffic(service.name, destination.index),
      balancer: new Balancer(service.balance ?? this.settings.balance, service.sticky === true, destination.port),
      health: destinationHealth(service, destination, this.settings.timeouts.connect),
      ...(service.requestHeaders === undefined ? {} : { requestEdits: compileHeaderEdits(service.requestHeaders) }),
      ...(service.responseHeaders === undefined ? {} : { responseEdits: compileHeaderEdits(service.responseHeaders) }),
      ...(users === undefined ? {} : { auth: new BasicAuthCheck(users) }),
      ...(compression === undefined ? {} : { compression }),
      ...(service.pathRewrites === undefined ? {} : { pathRewrites: service.pathRewrites.map(({ search, replace }) => [new RegExp(search), replace] as const) }),
    };
  }

  async start(initial: RouteTableSnapshot, certificates: CertificateSet): Promise<void> {
    const raw = this.settings.rawHaproxy;
    if (raw !== undefined && raw.extraGlobal.length + raw.extraFrontend.length > 0) {
      throw new Error('EXTRA_GLOBAL and EXTRA_FRONTEND are raw HAProxy configuration that the built-in plane cannot run; unset them or run the HAProxy plane (--data-plane haproxy)');
    }
    await this.validate(initial);
    await this.apply(initial);
    await this.applyCertificates(certificates);
    const { timeouts } = this.settings;
    const serverOptions: http.ServerOptions = {
      maxHeaderSize: 16 * 1024,
      headersTimeout: timeouts.httpRequest * 1000,
      requestTimeout: 0,
      keepAliveTimeout: timeouts.httpKeepAlive * 1000,
      // Node checks header and request timeouts on this period; its default (30 s) would let a
      // slow-header client hold a connection far longer than TIMEOUT_HTTP_REQUEST.
      connectionsCheckingInterval: 250,
      // Checked by refusal(), which also stops the pipelined requests behind it.
      requireHostHeader: false,
    };
    const listeners: [http.Server | SecureServer, number, Arrival['proto']][] = [
      ...[this.settings.httpPort, ...this.settings.extraHttpPorts].map((port): [http.Server, number, 'http'] => [http.createServer(serverOptions), port, 'http']),
      [this.contexts.createServer(certificates.defaultCertificate, serverOptions), this.settings.httpsPort, 'https'],
    ];
    for (const [server, port, proto] of listeners) {
      const arrival: Arrival = { proto, port };
      // Set as properties too: an HTTP/2 server applies them to its HTTP/1.1 connections.
      Object.assign(server, { headersTimeout: serverOptions.headersTimeout, keepAliveTimeout: serverOptions.keepAliveTimeout, maxHeadersCount: MAX_HEADERS });
      server.maxConnections = 10_000;
      // TIMEOUT_CLIENT is client inactivity: a client waiting for a slow backend is not idle
      // (timeoutServer covers that wait); one that does not read its answer is.
      server.setTimeout(timeouts.client * 1000);
      server.on('timeout', (connection: Socket | http2.ServerHttp2Session) => {
        const waiting = this.inFlight.get(connection);
        if (waiting !== undefined && [...waiting].some((res) => !res.headersSent)) return;
        connection.destroy();
      });
      server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res, arrival));
      server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => this.handleUpgrade(req, socket, head, arrival));
      server.on('clientError', (_error: Error, socket: Socket) => this.refuseConnection(socket));
      server.on(server instanceof http.Server ? 'connection' : 'secureConnection', (socket: Socket) => {
        this.metrics.connections.inc();
        socket.once('close', () => this.metrics.connections.dec());
      });
      // A failed handshake costs its connection only.
      server.on('tlsClientError', (_error: Error, socket: Socket) => socket.destroy());
      const listener = this.settings.proxyProtocolPorts.has(port)
        ? acceptProxyProtocol(server, { timeoutMs: timeouts.httpRequest * 1000 })
        : server;
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen(port, this.settings.bindAddress, () => resolve());
      });
      this.servers.push({ server, listener });
    }
  }

  private targetFor(req: http.IncomingMessage): Target | undefined {
    const route = this.serving.index.match(normalizeHost(hostOf(req)), pathOf(originForm(req.url ?? '/')), req.headers);
    return route === undefined ? undefined : this.serving.targets.get(route.destination);
  }

  /** ACME answers, then domain redirects, then HTTPS redirects: the HAProxy plane's order. Returns true when it answered. */
  private answered(req: http.IncomingMessage, res: http.ServerResponse, target: Target | undefined, arrival: Arrival): boolean {
    const url = req.url ?? '/';
    if (url.startsWith(ACME_CHALLENGE_PREFIX)) {
      const answer = this.challenges.get(pathOf(url).slice(ACME_CHALLENGE_PREFIX.length));
      if (answer !== undefined) {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': answer.length });
        res.end(answer);
        return true;
      }
    }
    const host = hostOf(req);
    if (host === undefined) return false;
    if (this.serving.redirects.size > 0) {
      const to = this.serving.redirects.get(normalizeHost(host) ?? '');
      if (to !== undefined) {
        redirect(res, 301, `${arrival.proto}://${to}${portSuffix(host)}${url}`);
        return true;
      }
    }
    if (arrival.proto === 'http' && target !== undefined && (target.service.httpsOnly ?? this.settings.httpsOnly)) {
      const port = this.settings.httpsPort === 443 ? '' : `:${this.settings.httpsPort}`;
      const hostname = host.endsWith(']') ? host : host.split(':')[0];
      redirect(res, target.service.httpsRedirectCode ?? 302, `https://${hostname}${port}${url}`);
      return true;
    }
    // A load balancer in front terminated TLS and says the client came over plain HTTP: the
    // client is sent to HTTPS as it sees it (the balancer's port, so none is added).
    if (arrival.proto === 'http' && target?.service.redirectWhenHttpProto === true && lastValue(req.headers['x-forwarded-proto']) === 'http') {
      redirect(res, target.service.httpsRedirectCode ?? 302, `https://${host}${url}`);
      return true;
    }
    return false;
  }

  /** The responses in progress on the request's connection, `res` among them. */
  private track(req: http.IncomingMessage, res: http.ServerResponse): Set<http.ServerResponse> {
    const connection: object = isHttp2(req) ? ((req as unknown as http2.Http2ServerRequest).stream.session ?? req.socket) : req.socket;
    let responses = this.inFlight.get(connection);
    if (responses === undefined) this.inFlight.set(connection, (responses = new Set()));
    responses.add(res);
    return responses;
  }

  /**
   * Bytes Node cannot parse end the connection. Requests already read from it are answered
   * first (a 400 must not take the place of their answers), and nothing read after is forwarded.
   */
  private refuseConnection(socket: Socket): void {
    if (this.broken.has(socket)) {
      socket.end(); // already refused: the one answer it gets has been written
      return;
    }
    this.broken.add(socket);
    const pending = [...(this.inFlight.get(socket) ?? [])].filter((res) => !res.writableFinished);
    if (pending.length === 0) {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
      return;
    }
    let left = pending.length;
    for (const res of pending) {
      res.once('close', () => {
        if (--left === 0) socket.end();
      });
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, arrival: Arrival): void {
    if (this.broken.has(req.socket)) {
      res.destroy();
      return;
    }
    const started = performance.now();
    const responses = this.track(req, res);
    let target: Target | undefined;
    // One listener per response for both jobs: it is on the hot path.
    res.once('close', () => {
      responses.delete(res);
      this.observer.ended(req, res, target, started);
    });
    const refused = refusal(req, MAX_HEADERS);
    if (refused !== undefined) {
      // Pipelined requests behind a refused one are not forwarded: the connection ends here.
      this.broken.add(req.socket);
      res.shouldKeepAlive = false;
      plainAnswer(res, refused.status, `${refused.reason}\n`);
      return;
    }
    if (this.stats !== undefined && req.url === this.stats.uri) {
      this.stats.answer(req, res, this.serving.targets.values());
      return;
    }
    const found = this.targetFor(req);
    if (this.answered(req, res, found, arrival)) return;
    if (found === undefined) {
      errorAnswer(res, 404, 'no route for this host and path\n', this.settings.errorPages);
      return;
    }
    target = found;
    const outside = this.clients.refusal(found.service, req);
    if (outside !== undefined) {
      errorAnswer(res, 403, `${outside}\n`, this.settings.errorPages);
      return;
    }
    if (found.auth !== undefined && !found.auth.allows(req.headers.authorization)) {
      res.setHeader('www-authenticate', `Basic realm="${AUTH_REALM}"`);
      plainAnswer(res, 401, `service ${found.service.name} needs credentials\n`);
      return;
    }
    const forbidden = policyRefusal(found.service, req.method ?? 'GET', arrival);
    if (forbidden !== undefined) {
      errorAnswer(res, 403, `${forbidden}\n`, this.settings.errorPages);
      return;
    }
    this.forwarder.forward(req, res, found, arrival);
  }

  private countReplicas(): void {
    this.metrics.replicas.reset();
    for (const target of this.serving.targets.values()) {
      this.metrics.replicas.set({ service: target.service.name, destination: String(target.destination.index) }, this.book.addresses(target.dnsName)?.length ?? 0);
    }
  }

  private handleUpgrade(req: http.IncomingMessage, socket: Socket, head: Buffer, arrival: Arrival): void {
    const refused = refusal(req, MAX_HEADERS);
    if (this.broken.has(socket) || refused !== undefined) {
      socket.end(`HTTP/1.1 ${refused?.status ?? 400} Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    const target = this.targetFor(req);
    if (target === undefined) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    if (this.clients.refusal(target.service, req) !== undefined) {
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    if (target.auth !== undefined && !target.auth.allows(req.headers.authorization)) {
      socket.end(`HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic realm="${AUTH_REALM}"\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    if (policyRefusal(target.service, req.method ?? 'GET', arrival) !== undefined) {
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    this.forwarder.upgrade(req, socket, head, target, arrival);
  }

  async applyCertificates(certificates: CertificateSet): Promise<void> {
    this.certificates = certificates;
    this.contexts.update(certificates, certificatePins(this.serving.snapshot));
  }

  async setAcmeChallenge(token: string, keyAuthorization: string): Promise<void> {
    checkChallenge(token, keyAuthorization);
    this.challenges.set(token, keyAuthorization);
  }

  async removeAcmeChallenge(token: string): Promise<void> {
    this.challenges.delete(token);
  }

  /** Every table the route model accepts can be served: nothing to check. */
  async validate(candidate: RouteTableSnapshot): Promise<void> {
    const conflict = streamConflict(candidate, proxyPorts(this.settings));
    if (conflict !== undefined) throw new PlaneRejection(conflict);
    for (const { service } of candidate.services.values()) {
      if (service.backendExtra !== undefined) {
        throw new PlaneRejection(`service ${service.name} has backendExtra, raw HAProxy configuration that the built-in plane cannot run; remove it or run the HAProxy plane (--data-plane haproxy)`);
      }
    }
  }

  async apply(snapshot: RouteTableSnapshot): Promise<void> {
    const serving = this.build(snapshot, this.serving);
    this.serving = serving;
    await this.streams.apply(snapshot);
    if (this.certificates !== undefined) this.contexts.update(this.certificates, certificatePins(snapshot));
  }

  async reload(): Promise<void> {
    await this.apply(this.serving.snapshot);
  }

  status(): PlaneStatus {
    return {
      kind: this.kind,
      ready: this.servers.length > 0 && this.servers.every(({ listener }) => listener.listening),
      version: this.serving.snapshot.version,
      details: { routes: this.serving.index.size, backends: this.serving.targets.size, idleUpstreamConnections: this.pool.idleConnections },
    };
  }

  async describe(): Promise<string> {
    const lines: string[] = [];
    for (const { service } of this.serving.snapshot.services.values()) {
      const mode = service.addressMode ?? this.settings.addressMode;
      for (const route of routesOf(service)) {
        lines.push(`${route.domain ?? '*'}${route.path} -> ${service.name}:${route.destination.port} (${mode})`);
      }
    }
    lines.sort();
    return `# Flow Proxy built-in plane, route table version ${this.serving.snapshot.version}\n# host+path prefix -> service:port (address mode)\n${lines.join('\n')}\n`;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(
        ({ server, listener }) =>
          new Promise<void>((resolve) => {
            const force = setTimeout(() => (server instanceof http.Server ? server.closeAllConnections() : this.contexts.destroyConnections(server)), this.settings.stopGrace * 1000);
            // The listener's close waits for every connection it accepted to end.
            if (listener !== server) server.close();
            listener.close(() => {
              clearTimeout(force);
              resolve();
            });
            if (server instanceof http.Server) server.closeIdleConnections();
            else this.contexts.closeGracefully(server);
          }),
      ),
    );
    this.pool.destroy();
    await this.streams.stop();
    this.health.stop();
  }
}
