/**
 * The ports tcp and sni services are reached on, written once for both planes: a tcp service
 * owns its srcPort, sni services share theirs and are told apart by the TLS server name (an exact
 * name first, then the longest wildcard, as HTTP routing).
 */
import type { Destination, RouteTableSnapshot, Service } from './model.js';

export interface StreamTarget {
  readonly service: Service;
  readonly destination: Destination;
}

export interface SniRoute extends StreamTarget {
  /** Lower-case host name, or `*.suffix`. */
  readonly domain: string;
}

export interface StreamListener {
  readonly port: number;
  /** Set for a tcp port. */
  readonly tcp: StreamTarget | undefined;
  /** For an sni port, in match order: exact names, then wildcards, longest first. */
  readonly sni: readonly SniRoute[];
  /** Seconds a client may stay idle: the service's timeoutClient (the longest of an sni port's), else the default. */
  readonly timeoutClientSeconds: number;
}

/** The listeners the table needs, by port. Callers check `streamConflict` first. */
export function streamListeners(snapshot: RouteTableSnapshot, defaultTimeoutClient: number): Map<number, StreamListener> {
  const tcp = new Map<number, StreamTarget>();
  const sni = new Map<number, SniRoute[]>();
  for (const { service } of snapshot.services.values()) {
    if (service.reqMode === 'http') continue;
    for (const destination of service.destinations) {
      const port = destination.srcPort;
      if (port === undefined) continue;
      if (service.reqMode === 'tcp') tcp.set(port, { service, destination });
      else {
        let routes = sni.get(port);
        if (routes === undefined) sni.set(port, (routes = []));
        for (const domain of destination.domains) routes.push({ service, destination, domain });
      }
    }
  }
  const listeners = new Map<number, StreamListener>();
  for (const [port, target] of tcp) listeners.set(port, { port, tcp: target, sni: [], timeoutClientSeconds: target.service.timeoutClient ?? defaultTimeoutClient });
  for (const [port, routes] of sni) {
    routes.sort(sniOrder);
    const timeouts = routes.map((route) => route.service.timeoutClient ?? defaultTimeoutClient);
    listeners.set(port, { port, tcp: undefined, sni: routes, timeoutClientSeconds: Math.max(...timeouts) });
  }
  return listeners;
}

function sniOrder(a: SniRoute, b: SniRoute): number {
  const wild = (route: SniRoute) => (route.domain.startsWith('*.') ? 1 : 0);
  return wild(a) - wild(b) || b.domain.length - a.domain.length || (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0);
}

/** The route of a TLS server name on an sni port, or undefined (the connection is closed). */
export function sniRouteFor(listener: StreamListener, serverName: string | undefined): SniRoute | undefined {
  if (serverName === undefined) return undefined;
  return listener.sni.find((route) => (route.domain.startsWith('*.') ? serverName.endsWith(route.domain.slice(1)) : route.domain === serverName));
}

/**
 * Why the table's tcp and sni ports cannot all be served, or undefined: a port the proxy already
 * uses, two tcp services on one port, a tcp and an sni service on one port, or one server name
 * given to two services on a port.
 */
export function streamConflict(snapshot: RouteTableSnapshot, reservedPorts: readonly number[]): string | undefined {
  const owners = new Map<number, { mode: 'tcp' | 'sni'; name: string }>();
  const names = new Map<string, string>();
  for (const { service } of snapshot.services.values()) {
    if (service.reqMode === 'http') continue;
    for (const destination of service.destinations) {
      const port = destination.srcPort;
      if (port === undefined) continue;
      if (reservedPorts.includes(port)) return `srcPort ${port} of ${service.name} is one of the proxy's own ports (${reservedPorts.join(', ')}); choose another`;
      const owner = owners.get(port);
      const shared = owner !== undefined && (owner.name !== service.name || service.reqMode === 'tcp');
      if (owner !== undefined && shared && (owner.mode === 'tcp' || service.reqMode === 'tcp')) {
        return `srcPort ${port} is already used by ${owner.mode} service ${owner.name}; a reqMode=tcp service needs a port of its own`;
      }
      owners.set(port, { mode: service.reqMode, name: service.name });
      for (const domain of destination.domains) {
        const key = `${port} ${domain}`;
        const holder = names.get(key);
        if (holder !== undefined && holder !== service.name) return `server name ${domain} on srcPort ${port} is already passed to ${holder}`;
        names.set(key, service.name);
      }
    }
  }
  return undefined;
}
