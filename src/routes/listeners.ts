/**
 * The ports tcp and sni services are reached on, written once for both planes: a tcp service
 * owns its srcPort unless it shares it with the other members of its serviceGroup; sni services
 * share theirs and are told apart by the TLS server name (an exact name first, then the longest
 * wildcard, as HTTP routing).
 */
import type { BalanceAlgorithm, Destination, RouteTableSnapshot, Service } from './model.js';

export interface StreamTarget {
  readonly service: Service;
  readonly destination: Destination;
}

export interface SniRoute extends StreamTarget {
  /** Lower-case host name, or `*.suffix`. */
  readonly domain: string;
}

/** Where a tcp port's connections go: the one destination that owns the port, or every member of a serviceGroup. */
export interface TcpPool {
  /** The serviceGroup; undefined when one service owns the port. */
  readonly group: string | undefined;
  /** The owner, or the group's members by service name and index; each member's weight is its destination's `group.weight`. */
  readonly members: readonly StreamTarget[];
  /** The group's balanceGroup, else the owner's balance; undefined: the global BALANCE. */
  readonly balance: BalanceAlgorithm | undefined;
}

export interface StreamListener {
  readonly port: number;
  /** Set for a tcp port. */
  readonly tcp: TcpPool | undefined;
  /** For an sni port, in match order: exact names, then wildcards, longest first. */
  readonly sni: readonly SniRoute[];
  /** Seconds a client may stay idle: the longest timeoutClient of the port's services (one counts as the default when it has none). */
  readonly timeoutClientSeconds: number;
}

/** The listeners the table needs, by port. Callers check `streamConflict` first. */
export function streamListeners(snapshot: RouteTableSnapshot, defaultTimeoutClient: number): Map<number, StreamListener> {
  const tcp = new Map<number, { group: string | undefined; members: StreamTarget[]; balance: BalanceAlgorithm | undefined }>();
  const sni = new Map<number, SniRoute[]>();
  for (const { service } of snapshot.services.values()) {
    if (service.reqMode === 'http') continue;
    for (const destination of service.destinations) {
      const port = destination.srcPort;
      if (port === undefined) continue;
      if (service.reqMode === 'tcp') {
        const group = destination.group;
        const pool = tcp.get(port);
        if (group !== undefined && pool !== undefined && pool.group === group.name) pool.members.push({ service, destination });
        else tcp.set(port, { group: group?.name, members: [{ service, destination }], balance: group === undefined ? service.balance : group.balance });
      } else {
        let routes = sni.get(port);
        if (routes === undefined) sni.set(port, (routes = []));
        for (const domain of destination.domains) routes.push({ service, destination, domain });
      }
    }
  }
  const longestTimeout = (services: readonly Service[]) => Math.max(...services.map((service) => service.timeoutClient ?? defaultTimeoutClient));
  const listeners = new Map<number, StreamListener>();
  for (const [port, pool] of tcp) {
    pool.members.sort(memberOrder);
    listeners.set(port, { port, tcp: pool, sni: [], timeoutClientSeconds: longestTimeout(pool.members.map((member) => member.service)) });
  }
  for (const [port, routes] of sni) {
    routes.sort(sniOrder);
    listeners.set(port, { port, tcp: undefined, sni: routes, timeoutClientSeconds: longestTimeout(routes.map((route) => route.service)) });
  }
  return listeners;
}

function memberOrder(a: StreamTarget, b: StreamTarget): number {
  return (a.service.name < b.service.name ? -1 : a.service.name > b.service.name ? 1 : 0) || a.destination.index - b.destination.index;
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
 * uses, two tcp services on one port outside one serviceGroup, members of a group that disagree
 * on its balanceGroup, a tcp and an sni service on one port, or one server name given to two
 * services on a port.
 */
export function streamConflict(snapshot: RouteTableSnapshot, reservedPorts: readonly number[]): string | undefined {
  const owners = new Map<number, { mode: 'tcp' | 'sni'; name: string; destination: Destination }>();
  const names = new Map<string, string>();
  for (const { service } of snapshot.services.values()) {
    if (service.reqMode === 'http') continue;
    for (const destination of service.destinations) {
      const port = destination.srcPort;
      if (port === undefined) continue;
      if (reservedPorts.includes(port)) return `srcPort ${port} of ${service.name} is one of the proxy's own ports (${reservedPorts.join(', ')}); choose another`;
      const owner = owners.get(port);
      if (owner !== undefined && owner.mode === 'tcp' && service.reqMode === 'tcp') {
        const conflict = tcpSharing(port, owner, { name: service.name, destination });
        if (conflict !== undefined) return conflict;
      } else if (owner !== undefined && owner.mode !== service.reqMode) {
        return `srcPort ${port} is already used by ${owner.mode} service ${owner.name}; a reqMode=tcp service needs a port of its own, or one shared with its serviceGroup only`;
      }
      if (owner === undefined) owners.set(port, { mode: service.reqMode, name: service.name, destination });
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

/** Why a tcp destination cannot share `port` with the one that took it first: only members of one serviceGroup share, and they agree on balanceGroup. */
function tcpSharing(port: number, first: { name: string; destination: Destination }, next: { name: string; destination: Destination }): string | undefined {
  const held = first.destination.group;
  const joining = next.destination.group;
  if (held === undefined) {
    return joining === undefined
      ? `srcPort ${port} is already used by tcp service ${first.name}; a reqMode=tcp service needs a port of its own (or give both the same serviceGroup to share it)`
      : `srcPort ${port} is used by tcp service ${first.name}, which is in no serviceGroup; serviceGroup ${joining.name} of ${next.name} needs another srcPort, or ${first.name} must join the group`;
  }
  if (joining === undefined) return `srcPort ${port} is shared by serviceGroup ${held.name} (${first.name}); ${next.name} must join it with serviceGroup=${held.name}, or use another srcPort`;
  if (held.name !== joining.name) return `srcPort ${port} is shared by serviceGroup ${held.name} (${first.name}); serviceGroup ${joining.name} of ${next.name} needs another srcPort`;
  if (held.balance !== joining.balance) {
    const shown = (balance: string | undefined) => (balance === undefined ? 'none (the global BALANCE)' : balance);
    return `balanceGroup of serviceGroup ${held.name} on srcPort ${port}: ${next.name} gives ${shown(joining.balance)} but ${first.name} gives ${shown(held.balance)}; every member gives the same balanceGroup (or none)`;
  }
  return undefined;
}
