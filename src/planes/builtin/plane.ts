/**
 * The built-in data plane: the same routing as the HAProxy plane (src/routes/match.ts) served by
 * Node itself, for machines without HAProxy. A new table is swapped in with one assignment, so
 * route changes never close a client connection.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../log.js';
import { normalizeHost, RouteIndex } from '../../routes/match.js';
import type { Destination, RouteTableSnapshot } from '../../routes/model.js';
import { routesOf } from '../../routes/model.js';
import type { Settings } from '../../settings/settings.js';
import type { DataPlane, PlaneStatus } from '../plane.js';
import { resolveIntervalFor } from '../resolve-interval.js';
import { Forwarder, pathOf, plainAnswer } from './proxy.js';
import type { Target } from './proxy.js';
import { AddressBook } from './resolver.js';
import { UpstreamPool } from './upstream.js';
import { StatsPage } from './stats.js';

interface Serving {
  readonly snapshot: RouteTableSnapshot;
  readonly index: RouteIndex;
  readonly targets: ReadonlyMap<Destination, Target>;
}

export class BuiltinPlane implements DataPlane {
  readonly kind = 'builtin' as const;
  private serving: Serving;
  private readonly servers: http.Server[] = [];
  private readonly book: AddressBook;
  private readonly pool = new UpstreamPool();
  private readonly forwarder: Forwarder;
  private readonly stats: StatsPage | undefined;

  constructor(
    private readonly settings: Settings,
    log: Logger,
  ) {
    this.book = new AddressBook(settings.dnsServers, log);
    this.forwarder = new Forwarder(this.book, this.pool, settings.forwardedHeader);
    this.stats = settings.stats === undefined ? undefined : new StatsPage(settings.stats);
    this.serving = this.build({ version: 0, services: new Map() });
  }

  private build(snapshot: RouteTableSnapshot): Serving {
    const targets = new Map<Destination, Target>();
    for (const { service } of snapshot.services.values()) {
      const tasks = (service.addressMode ?? this.settings.addressMode) === 'tasks';
      for (const destination of service.destinations) {
        targets.set(destination, {
          service,
          destination,
          dnsName: tasks ? `tasks.${service.name}` : service.name,
          port: destination.port,
          timeoutServerMs: (service.timeoutServer ?? this.settings.timeouts.server) * 1000,
          timeoutTunnelMs: (service.timeoutTunnel ?? this.settings.timeouts.tunnel) * 1000,
          requests: 0,
        });
      }
    }
    return { snapshot, index: new RouteIndex(snapshot), targets };
  }

  async start(initial: RouteTableSnapshot): Promise<void> {
    await this.apply(initial);
    const { timeouts } = this.settings;
    for (const port of [this.settings.httpPort, ...this.settings.extraHttpPorts]) {
      const server = http.createServer({
        maxHeaderSize: 16 * 1024,
        headersTimeout: timeouts.httpRequest * 1000,
        requestTimeout: 0,
        keepAliveTimeout: timeouts.httpKeepAlive * 1000,
        // Node checks header and request timeouts on this period; its default (30 s) would let a
        // slow-header client hold a connection far longer than TIMEOUT_HTTP_REQUEST.
        connectionsCheckingInterval: 250,
      });
      server.maxHeadersCount = 100;
      server.maxConnections = 10_000;
      server.timeout = timeouts.client * 1000;
      server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res));
      server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => this.handleUpgrade(req, socket, head));
      server.on('clientError', (_error, socket: Socket) => {
        if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        else socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, this.settings.bindAddress, () => resolve());
      });
      this.servers.push(server);
    }
  }

  private targetFor(req: http.IncomingMessage): Target | undefined {
    const route = this.serving.index.match(normalizeHost(req.headers.host), pathOf(req.url ?? '/'));
    return route === undefined ? undefined : this.serving.targets.get(route.destination);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.stats !== undefined && req.url === this.stats.uri) {
      this.stats.answer(req, res, this.serving.targets.values());
      return;
    }
    const target = this.targetFor(req);
    if (target === undefined) {
      plainAnswer(res, 404, 'no route for this host and path\n');
      return;
    }
    this.forwarder.forward(req, res, target);
  }

  private handleUpgrade(req: http.IncomingMessage, socket: Socket, head: Buffer): void {
    const target = this.targetFor(req);
    if (target === undefined) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    this.forwarder.upgrade(req, socket, head, target);
  }

  async validate(candidate: RouteTableSnapshot): Promise<void> {
    this.build(candidate);
  }

  async apply(snapshot: RouteTableSnapshot): Promise<void> {
    const serving = this.build(snapshot);
    const names = new Map<string, number>();
    for (const target of serving.targets.values()) names.set(target.dnsName, target.dnsName.startsWith('tasks.') ? this.settings.maxTasks : 1);
    this.book.follow(names, resolveIntervalFor(serving.targets.size, this.settings.resolveInterval));
    this.serving = serving;
  }

  async reload(): Promise<void> {
    await this.apply(this.serving.snapshot);
  }

  status(): PlaneStatus {
    return {
      kind: this.kind,
      ready: this.servers.length > 0 && this.servers.every((server) => server.listening),
      version: this.serving.snapshot.version,
      details: { routes: this.serving.index.size, backends: this.serving.targets.size },
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
    this.book.stop();
    await Promise.all(
      this.servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            const force = setTimeout(() => server.closeAllConnections(), this.settings.stopGrace * 1000);
            server.close(() => {
              clearTimeout(force);
              resolve();
            });
            server.closeIdleConnections();
          }),
      ),
    );
    this.pool.destroy();
  }
}
