/**
 * The matching rules, written once (docs/routing.md). The built-in plane routes with this
 * index; the HAProxy plane renders map files with the same precedence, and the conformance
 * suite checks that both agree.
 *
 * 1. The host is the Host header without its port, lower-cased.
 * 2. Routes of the exact host are tried first, then routes of the most specific wildcard
 *    domain that covers the host (`*.b.example.com` before `*.example.com`), then routes
 *    without a domain. The first of these groups with a matching path decides.
 * 3. Within a group the longest path prefix wins, whatever the order routes were added in.
 *    Prefixes are plain string prefixes, as HAProxy's path_beg: /demo matches /demo/hello
 *    and /demonstration.
 * 4. Routes with conditions (servicePathExclude, serviceHeader, userAgent, serviceDomainAlgo) are
 *    tried before all others, in conditionalOrder; the first whose host, path and conditions
 *    the request meets wins.
 * 5. A request nothing matches goes to the default backend (isDefaultBackend) if there is one.
 */
import type { Route, RouteTableSnapshot, Service } from './model.js';
import { conditionWeight, routesOf } from './model.js';

/** Request headers by lower-case name, as Node gives them. */
export type RequestHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

const NO_HEADERS: RequestHeaders = {};

interface RadixEdge<T> {
  label: string;
  node: RadixNode<T>;
}

interface RadixNode<T> {
  value: T | undefined;
  edges: Map<number, RadixEdge<T>>;
}

/** A radix tree over strings answering "longest stored prefix of this string" in O(length). */
export class PrefixTree<T> {
  private readonly root: RadixNode<T> = { value: undefined, edges: new Map() };

  insert(key: string, value: T): void {
    let node = this.root;
    let pos = 0;
    while (pos < key.length) {
      const edge = node.edges.get(key.charCodeAt(pos));
      if (edge === undefined) {
        node.edges.set(key.charCodeAt(pos), { label: key.slice(pos), node: { value, edges: new Map() } });
        return;
      }
      const common = commonPrefixLength(edge.label, key, pos);
      if (common < edge.label.length) {
        const middle: RadixNode<T> = { value: undefined, edges: new Map() };
        middle.edges.set(edge.label.charCodeAt(common), { label: edge.label.slice(common), node: edge.node });
        edge.label = edge.label.slice(0, common);
        edge.node = middle;
      }
      node = edge.node;
      pos += common;
    }
    node.value = value;
  }

  /** Removes the value stored at exactly `key` if `matches` it; nodes left without purpose are pruned. */
  delete(key: string, matches: (value: T) => boolean): boolean {
    const path: { node: RadixNode<T>; edge: RadixEdge<T> }[] = [];
    let node = this.root;
    let pos = 0;
    while (pos < key.length) {
      const edge = node.edges.get(key.charCodeAt(pos));
      if (edge === undefined || !key.startsWith(edge.label, pos)) return false;
      path.push({ node, edge });
      node = edge.node;
      pos += edge.label.length;
    }
    if (node.value === undefined || !matches(node.value)) return false;
    node.value = undefined;
    for (let i = path.length - 1; i >= 0; i--) {
      const step = path[i] as { node: RadixNode<T>; edge: RadixEdge<T> };
      if (step.edge.node.value !== undefined || step.edge.node.edges.size > 0) break;
      step.node.edges.delete(step.edge.label.charCodeAt(0));
    }
    return true;
  }

  get empty(): boolean {
    return this.root.value === undefined && this.root.edges.size === 0;
  }

  longestPrefixOf(key: string): T | undefined {
    let node = this.root;
    let best = node.value;
    let pos = 0;
    while (pos < key.length) {
      const edge = node.edges.get(key.charCodeAt(pos));
      if (edge === undefined || !key.startsWith(edge.label, pos)) break;
      node = edge.node;
      pos += edge.label.length;
      if (node.value !== undefined) best = node.value;
    }
    return best;
  }
}

function commonPrefixLength(label: string, key: string, offset: number): number {
  let i = 0;
  while (i < label.length && offset + i < key.length && label.charCodeAt(i) === key.charCodeAt(offset + i)) i++;
  return i;
}

/** Host header -> the host used for matching: port removed, lower-cased. */
export function normalizeHost(hostHeader: string | undefined): string {
  if (hostHeader === undefined) return '';
  const colon = hostHeader.indexOf(':');
  return (colon === -1 ? hostHeader : hostHeader.slice(0, colon)).toLowerCase();
}

/** Host groups of rule 2, for ordering conditional routes: exact, compared (serviceDomainAlgo), wildcard, none. */
function hostRank(route: Route): number {
  if (route.domain === null) return 3;
  if (route.domain.startsWith('*.')) return 2;
  return route.service.conditions?.domainMatch === undefined ? 0 : 1;
}

/**
 * The order conditional routes are tried in, on both planes: by host group, then longest domain
 * and path, then the route asking more conditions, then aclName (Docker Flow Proxy's ordering
 * key, the service name by default), then service name and domain, so that the order never
 * depends on when routes were added.
 */
export function conditionalOrder(a: Route, b: Route): number {
  const weight = (route: Route) => (route.service.conditions === undefined ? 0 : conditionWeight(route.service.conditions));
  return (
    hostRank(a) - hostRank(b) ||
    (b.domain?.length ?? 0) - (a.domain?.length ?? 0) ||
    b.path.length - a.path.length ||
    weight(b) - weight(a) ||
    compareText(a.service.aclName ?? a.service.name, b.service.aclName ?? b.service.name) ||
    compareText(a.service.name, b.service.name) ||
    compareText(a.domain ?? '', b.domain ?? '') ||
    compareText(a.path, b.path)
  );
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function hostMeets(route: Route, host: string): boolean {
  const domain = route.domain;
  if (domain === null) return true;
  switch (route.service.conditions?.domainMatch) {
    case 'beg':
      return host.startsWith(domain);
    case 'end':
      return host.endsWith(domain);
    case 'dom':
      return `.${host}.`.includes(`.${domain}.`);
    default:
      return domain.startsWith('*.') ? host.endsWith(domain.slice(1)) : host === domain;
  }
}

/** Every value of a header: repeated fields and comma-separated items, trimmed (as HAProxy's hdr()). */
function headerValues(value: string | readonly string[] | undefined): string[] {
  if (value === undefined) return [];
  return (typeof value === 'string' ? [value] : value).flatMap((field) => field.split(',').map((item) => item.trim()));
}

/** Whether a request meets a conditional route: host, path and every condition. */
export function meets(route: Route, host: string, path: string, headers: RequestHeaders): boolean {
  const conditions = route.service.conditions;
  if (!path.startsWith(route.path) || !hostMeets(route, host)) return false;
  if (conditions === undefined) return true;
  if (conditions.excludedPaths.some((excluded) => path.startsWith(excluded))) return false;
  for (const { name, value } of conditions.headers) if (!headerValues(headers[name.toLowerCase()]).includes(value)) return false;
  if (conditions.userAgents.length > 0) {
    const agent = headers['user-agent'];
    const text = (typeof agent === 'string' ? agent : (agent ?? []).join(' ')).toLowerCase();
    if (!conditions.userAgents.some((fragment) => text.includes(fragment.toLowerCase()))) return false;
  }
  return true;
}

/** The route of the default backend: the service's first destination, for every request nothing else matches. */
export function defaultRoute(service: Service): Route | undefined {
  const destination = service.destinations[0];
  if (service.isDefaultBackend !== true || destination === undefined) return undefined;
  return { domain: null, path: '/', service, destination };
}

export class RouteIndex {
  private readonly exact = new Map<string, PrefixTree<Route>>();
  private readonly wildcard = new Map<string, PrefixTree<Route>>();
  private readonly anyHost = new PrefixTree<Route>();
  /** Routes with conditions, in conditionalOrder. */
  private conditional: Route[] = [];
  private fallback: Route | undefined;
  private count = 0;

  constructor(snapshot: RouteTableSnapshot) {
    for (const { service } of snapshot.services.values()) this.add(service);
  }

  get size(): number {
    return this.count;
  }

  /**
   * Brings the index from `before` to `after` in place, touching only the services that changed
   * (unchanged ones are the same objects in both): a change among 10,000 services costs one
   * service's routes. Matching is synchronous, so no request sees a half-updated index.
   */
  update(before: RouteTableSnapshot, after: RouteTableSnapshot): void {
    for (const [name, { service }] of before.services) if (after.services.get(name)?.service !== service) this.remove(service);
    for (const [name, { service }] of after.services) if (before.services.get(name)?.service !== service) this.add(service);
  }

  private add(service: Service): void {
    this.fallback = defaultRoute(service) ?? this.fallback;
    if (service.conditions !== undefined) {
      const routes = routesOf(service);
      this.conditional = [...this.conditional, ...routes].sort(conditionalOrder);
      this.count += routes.length;
      return;
    }
    for (const route of routesOf(service)) {
      this.treeFor(route.domain).insert(route.path, route);
      this.count++;
    }
  }

  private remove(service: Service): void {
    if (this.fallback?.service === service) this.fallback = undefined;
    if (service.conditions !== undefined) {
      const kept = this.conditional.filter((route) => route.service !== service);
      this.count -= this.conditional.length - kept.length;
      this.conditional = kept;
      return;
    }
    for (const route of routesOf(service)) {
      const [map, key] = this.mapFor(route.domain);
      const tree = map === undefined ? this.anyHost : map.get(key);
      if (tree?.delete(route.path, (stored) => stored.service === service) !== true) continue;
      this.count--;
      if (map !== undefined && tree.empty) map.delete(key);
    }
  }

  private mapFor(domain: string | null): [Map<string, PrefixTree<Route>> | undefined, string] {
    if (domain === null) return [undefined, ''];
    return domain.startsWith('*.') ? [this.wildcard, domain.slice(2)] : [this.exact, domain];
  }

  private treeFor(domain: string | null): PrefixTree<Route> {
    const [map, key] = this.mapFor(domain);
    if (map === undefined) return this.anyHost;
    let tree = map.get(key);
    if (tree === undefined) map.set(key, (tree = new PrefixTree<Route>()));
    return tree;
  }

  /** `host` must already be normalised (normalizeHost); `path` is the raw path without the query. */
  match(host: string, path: string, headers: RequestHeaders = NO_HEADERS): Route | undefined {
    for (const route of this.conditional) if (meets(route, host, path, headers)) return route;
    return this.ordinary(host, path) ?? this.fallback;
  }

  private ordinary(host: string, path: string): Route | undefined {
    const exact = this.exact.get(host)?.longestPrefixOf(path);
    if (exact !== undefined) return exact;
    if (this.wildcard.size > 0) {
      for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
        const tree = this.wildcard.get(host.slice(dot + 1));
        if (tree !== undefined) {
          const found = tree.longestPrefixOf(path);
          if (found !== undefined) return found;
          break;
        }
      }
    }
    return this.anyHost.longestPrefixOf(path);
  }
}
