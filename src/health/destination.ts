/** What both planes check a destination's replicas with: one key per destination, on its plain port. */
import type { Destination, RouteTableSnapshot, Service } from '../routes/model.js';
import type { HealthCheck, HealthMonitor } from './monitor.js';

export interface DestinationHealth {
  /** SERVICE#INDEX: the TLS variant of a destination shares its plain port's results. */
  readonly key: string;
  readonly check: HealthCheck;
  readonly port: number;
}

/** The health check of `destination`, or undefined when its service has none. A probe gets TIMEOUT_CONNECT, at most the interval. */
export function destinationHealth(service: Service, destination: Destination, connectTimeoutSeconds: number): DestinationHealth | undefined {
  const spec = service.healthCheck;
  if (spec === undefined) return undefined;
  const intervalMs = spec.intervalSeconds * 1000;
  return {
    key: `${service.name}#${destination.index}`,
    port: destination.port,
    check: { kind: spec.kind, path: spec.path, intervalMs, timeoutMs: Math.min(intervalMs, connectTimeoutSeconds * 1000), rise: spec.rise, fall: spec.fall },
  };
}

/** Stops the checks of destinations `after` no longer has (their services changed or went), looking only at what changed. */
export function forgetRemoved(monitor: HealthMonitor, before: RouteTableSnapshot, after: RouteTableSnapshot): void {
  for (const [name, { service }] of before.services) {
    const now = after.services.get(name)?.service;
    if (now === service || service.healthCheck === undefined) continue;
    for (const destination of service.destinations) {
      if (now?.healthCheck === undefined || !now.destinations.some((d) => d.index === destination.index)) monitor.forget(`${name}#${destination.index}`);
    }
  }
}
