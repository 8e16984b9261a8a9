/**
 * How often the address book looks each backend host up again (once per interval for every
 * name); with thousands of services a fixed second would mean thousands of queries per
 * second to Swarm's DNS, and measurably less traffic served (docs/benchmarks.md). Keep it near
 * 1000 queries per second at most; --resolve-interval overrides.
 */
export function resolveIntervalFor(backendCount: number, configured: number | undefined): number {
  return configured ?? Math.min(30, Math.max(1, Math.ceil(backendCount / 1000)));
}
