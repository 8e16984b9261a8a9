/**
 * The built-in plane's tcp and sni ports (routes/listeners.ts): a tcp port pipes every
 * connection to a replica of its service, or of any member of its serviceGroup (members weighted
 * by their weight); an sni port reads the TLS ClientHello, chooses the service by its server
 * name, and pipes the same bytes on, so the client sees the replica's own certificate. Replicas
 * are chosen as for HTTP (balance, health checks), and a replica that refuses the connection is
 * replaced by another one before any byte is sent.
 */
import net from 'node:net';
import type { AddressBook } from '../../addresses/book.js';
import { backendHost } from '../../addresses/names.js';
import { destinationHealth } from '../../health/destination.js';
import type { DestinationHealth } from '../../health/destination.js';
import type { HealthMonitor } from '../../health/monitor.js';
import { sniRouteFor, streamListeners } from '../../routes/listeners.js';
import type { StreamListener, StreamTarget } from '../../routes/listeners.js';
import type { BalanceAlgorithm, Destination, RouteTableSnapshot } from '../../routes/model.js';
import type { Settings } from '../../settings/settings.js';
import { Balancer } from './balancer.js';
import type { WeightOf } from './balancer.js';
import { MAX_CLIENT_HELLO_BYTES, readClientHello } from './client-hello.js';
import { acceptProxyProtocol, clientAddressOf } from './proxy-protocol.js';

/** Replicas tried for one connection, as the HTTP path's retries. */
const ATTEMPTS = 3;

/** Where a connection may go: the members of a tcp port, or the one service an sni port chose, and how they share connections. */
interface Pool {
  readonly members: readonly StreamTarget[];
  readonly balancer: Balancer;
  /** Set for a serviceGroup: each member's replicas count its weight. */
  readonly weighted: boolean;
}

/** A replica of a pool's member; the balancer knows it as ADDRESS:PORT, since members may share addresses. */
interface Endpoint {
  readonly address: string;
  readonly member: StreamTarget;
  readonly health: DestinationHealth | undefined;
}

interface OpenPort {
  /** Replaced when the table changes; connections read it when they arrive. */
  listener: StreamListener;
  /** What listens: the server itself, or the PROXY protocol reader in front of it. */
  server: net.Server;
  readonly sockets: Set<net.Socket>;
}

export class StreamPorts {
  private readonly ports = new Map<number, OpenPort>();
  /** An sni route's balancer lives as long as its destination. */
  private readonly sniBalancers = new WeakMap<Destination, Balancer>();
  /** A tcp port's lives as long as the port and its algorithm, so connections in flight stay counted when members change. */
  private readonly tcpBalancers = new Map<number, Balancer>();

  constructor(
    private readonly settings: Settings,
    private readonly book: AddressBook,
    private readonly health: HealthMonitor,
  ) {}

  /** Opens the ports `snapshot` needs, closes the others; connections in progress are not cut. */
  async apply(snapshot: RouteTableSnapshot): Promise<void> {
    const wanted = streamListeners(snapshot, this.settings.timeouts.client);
    for (const [port, open] of this.ports) {
      if (wanted.has(port)) continue;
      open.server.close();
      this.ports.delete(port);
      this.tcpBalancers.delete(port);
    }
    // The plane follows every service's addresses (BuiltinPlane.addService), these included.
    for (const [port, listener] of wanted) {
      const open = this.ports.get(port);
      if (open !== undefined) open.listener = listener;
      else this.ports.set(port, await this.open(listener));
    }
  }

  async stop(): Promise<void> {
    for (const open of this.ports.values()) {
      open.server.close();
      for (const socket of open.sockets) socket.destroy();
    }
    this.ports.clear();
  }

  private async open(listener: StreamListener): Promise<OpenPort> {
    const sockets = new Set<net.Socket>();
    const inner = net.createServer({ noDelay: true });
    const open: OpenPort = { listener, server: inner, sockets };
    inner.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      this.accept(open.listener, socket);
    });
    if (this.settings.proxyProtocolPorts.has(listener.port)) open.server = acceptProxyProtocol(inner, { timeoutMs: this.settings.timeouts.httpRequest * 1000 });
    await new Promise<void>((resolve, reject) => {
      open.server.once('error', reject);
      open.server.listen(listener.port, this.settings.bindAddress, () => resolve());
    });
    return open;
  }

  private accept(listener: StreamListener, client: net.Socket): void {
    client.setTimeout(listener.timeoutClientSeconds * 1000, () => client.destroy());
    if (listener.tcp !== undefined) {
      const pool = { members: listener.tcp.members, balancer: this.tcpBalancer(listener.port, listener.tcp.balance), weighted: listener.tcp.group !== undefined };
      this.connect(pool, client, Buffer.alloc(0), ATTEMPTS, new Set());
      return;
    }
    // Wait for the ClientHello (TIMEOUT_HTTP_REQUEST at most), then choose by its server name.
    let received = Buffer.alloc(0);
    const deadline = setTimeout(() => client.destroy(), this.settings.timeouts.httpRequest * 1000);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const hello = readClientHello(received);
      if (hello.kind === 'incomplete' && received.length < MAX_CLIENT_HELLO_BYTES) return;
      client.off('data', onData);
      client.pause();
      clearTimeout(deadline);
      const route = hello.kind === 'hello' ? sniRouteFor(listener, hello.serverName) : undefined;
      if (route === undefined) client.destroy();
      else this.connect({ members: [route], balancer: this.sniBalancer(route), weighted: false }, client, received, ATTEMPTS, new Set());
    };
    client.on('data', onData);
    client.once('close', () => clearTimeout(deadline));
  }

  private connect(pool: Pool, client: net.Socket, head: Buffer, attempts: number, refused: ReadonlySet<string>): void {
    const names = pool.members.map((member) => backendHost(member.service, this.settings).name);
    const unresolved = names.filter((name) => this.book.cached(name) === undefined);
    if (unresolved.length > 0) {
      // The first connection to a service just added: its addresses are being looked up.
      Promise.all(unresolved.map((name) => this.book.resolve(name))).then(
        () => this.connect(pool, client, head, attempts, refused),
        () => client.destroy(),
      );
      return;
    }
    const endpoints = this.endpointsOf(pool, names);
    const weightOf: WeightOf = pool.weighted ? (key) => endpoints.get(key)?.member.destination.group?.weight ?? 1 : undefined;
    const choice = pool.balancer.pick([...endpoints.keys()], pool.balancer.needsClient ? clientAddressOf(client) : '', undefined, refused, weightOf);
    const endpoint = choice === undefined ? undefined : endpoints.get(choice.address);
    if (choice === undefined || endpoint === undefined || client.destroyed) {
      client.destroy();
      return;
    }
    const { address, member, health } = endpoint;
    const finished = pool.balancer.started(choice.address);
    const upstream = net.connect({ host: address, port: member.destination.port, noDelay: true });
    const connectTimer = setTimeout(() => upstream.destroy(new Error('connect timeout')), this.settings.timeouts.connect * 1000);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      if (health !== undefined) this.health.report(health.key, address, true);
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', () => undefined);
    upstream.once('close', () => {
      clearTimeout(connectTimer);
      finished?.();
      if (connected) {
        client.destroy();
        return;
      }
      if (health !== undefined) this.health.report(health.key, address, false);
      // Nothing was sent yet: another replica may take the connection.
      if (attempts > 1) this.connect(pool, client, head, attempts - 1, new Set([...refused, choice.address]));
      else client.destroy();
    });
    client.once('close', () => upstream.destroy());
  }

  /** The replicas in rotation of every member (those passing their member's health check, if it has one), by ADDRESS:PORT. */
  private endpointsOf(pool: Pool, names: readonly string[]): Map<string, Endpoint> {
    const endpoints = new Map<string, Endpoint>();
    pool.members.forEach((member, i) => {
      const addresses = this.book.cached(names[i] as string)?.addresses ?? [];
      const health = destinationHealth(member.service, member.destination, this.settings.timeouts.connect);
      const usable = health === undefined ? addresses : this.health.healthy(health.key, health.check, health.port, addresses);
      for (const address of usable) endpoints.set(`${address}:${member.destination.port}`, { address, member, health });
    });
    return endpoints;
  }

  private tcpBalancer(port: number, balance: BalanceAlgorithm | undefined): Balancer {
    const algorithm = balance ?? this.settings.balance;
    let balancer = this.tcpBalancers.get(port);
    if (balancer?.algorithm !== algorithm) this.tcpBalancers.set(port, (balancer = new Balancer(algorithm, false, port)));
    return balancer;
  }

  private sniBalancer({ service, destination }: StreamTarget): Balancer {
    let balancer = this.sniBalancers.get(destination);
    if (balancer === undefined) this.sniBalancers.set(destination, (balancer = new Balancer(service.balance ?? this.settings.balance, false, destination.port)));
    return balancer;
  }
}
