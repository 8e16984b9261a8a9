/**
 * The built-in plane's tcp and sni ports (routes/listeners.ts): a tcp port pipes every
 * connection to a replica of its service; an sni port reads the TLS ClientHello, chooses the
 * service by its server name, and pipes the same bytes on, so the client sees the replica's own
 * certificate. Replicas are chosen as for HTTP (balance, health checks), and a replica that
 * refuses the connection is replaced by another one before any byte is sent.
 */
import net from 'node:net';
import type { AddressBook } from '../../addresses/book.js';
import { backendHost } from '../../addresses/names.js';
import { destinationHealth } from '../../health/destination.js';
import type { DestinationHealth } from '../../health/destination.js';
import type { HealthMonitor } from '../../health/monitor.js';
import { sniRouteFor, streamListeners } from '../../routes/listeners.js';
import type { StreamListener, StreamTarget } from '../../routes/listeners.js';
import type { Destination, RouteTableSnapshot } from '../../routes/model.js';
import type { Settings } from '../../settings/settings.js';
import { Balancer } from './balancer.js';
import { MAX_CLIENT_HELLO_BYTES, readClientHello } from './client-hello.js';
import { acceptProxyProtocol, clientAddressOf } from './proxy-protocol.js';

/** Replicas tried for one connection, as the HTTP path's retries. */
const ATTEMPTS = 3;

interface OpenPort {
  /** Replaced when the table changes; connections read it when they arrive. */
  listener: StreamListener;
  /** What listens: the server itself, or the PROXY protocol reader in front of it. */
  server: net.Server;
  readonly sockets: Set<net.Socket>;
}

export class StreamPorts {
  private readonly ports = new Map<number, OpenPort>();
  private balancers = new WeakMap<Destination, Balancer>();

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
      this.connect(listener.tcp, client, Buffer.alloc(0), ATTEMPTS, new Set());
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
      else this.connect(route, client, received, ATTEMPTS, new Set());
    };
    client.on('data', onData);
    client.once('close', () => clearTimeout(deadline));
  }

  private connect(target: StreamTarget, client: net.Socket, head: Buffer, attempts: number, refused: Set<string>): void {
    const name = backendHost(target.service, this.settings).name;
    const entry = this.book.cached(name);
    if (entry === undefined) {
      // The first connection to a service just added: its addresses are being looked up.
      this.book.resolve(name).then(
        () => this.connect(target, client, head, attempts, refused),
        () => client.destroy(),
      );
      return;
    }
    const health = destinationHealth(target.service, target.destination, this.settings.timeouts.connect);
    const address = this.pick(target, health, entry.addresses, client, refused);
    if (address === undefined || client.destroyed) {
      client.destroy();
      return;
    }
    const finished = this.balancerOf(target).started(address);
    const upstream = net.connect({ host: address, port: target.destination.port, noDelay: true });
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
      if (attempts > 1) this.connect(target, client, head, attempts - 1, new Set([...refused, address]));
      else client.destroy();
    });
    client.once('close', () => upstream.destroy());
  }

  private pick(target: StreamTarget, health: DestinationHealth | undefined, addresses: readonly string[], client: net.Socket, refused: ReadonlySet<string>): string | undefined {
    const usable = health === undefined ? addresses : this.health.healthy(health.key, health.check, health.port, addresses);
    const balancer = this.balancerOf(target);
    return balancer.pick(usable, balancer.needsClient ? clientAddressOf(client) : '', undefined, refused)?.address;
  }

  private balancerOf({ service, destination }: StreamTarget): Balancer {
    let balancer = this.balancers.get(destination);
    if (balancer === undefined) this.balancers.set(destination, (balancer = new Balancer(service.balance ?? this.settings.balance, false, destination.port)));
    return balancer;
  }
}
