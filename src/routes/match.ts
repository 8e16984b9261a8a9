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
 */
import type { Route, RouteTableSnapshot } from './model.js';
import { routesOf } from './model.js';

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

export class RouteIndex {
  private readonly exact = new Map<string, PrefixTree<Route>>();
  private readonly wildcard = new Map<string, PrefixTree<Route>>();
  private readonly anyHost = new PrefixTree<Route>();
  readonly size: number;

  constructor(snapshot: RouteTableSnapshot) {
    let size = 0;
    for (const { service } of snapshot.services.values()) {
      for (const route of routesOf(service)) {
        this.treeFor(route.domain).insert(route.path, route);
        size++;
      }
    }
    this.size = size;
  }

  private treeFor(domain: string | null): PrefixTree<Route> {
    if (domain === null) return this.anyHost;
    const [map, key] = domain.startsWith('*.') ? [this.wildcard, domain.slice(2)] : [this.exact, domain];
    let tree = map.get(key);
    if (tree === undefined) map.set(key, (tree = new PrefixTree<Route>()));
    return tree;
  }

  /** `host` must already be normalised (normalizeHost); `path` is the raw path without the query. */
  match(host: string, path: string): Route | undefined {
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
