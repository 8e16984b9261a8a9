import type { RouteTableSnapshot } from '../routes/model.js';

/** Domains whose certificate a service names with `serviceCert`: domain -> certificate name. */
export function certificatePins(snapshot: RouteTableSnapshot): Map<string, string> {
  const pins = new Map<string, string>();
  for (const { service } of snapshot.services.values()) {
    if (service.serviceCert === undefined) continue;
    for (const destination of service.destinations) for (const domain of destination.domains) pins.set(domain, service.serviceCert);
  }
  return pins;
}
