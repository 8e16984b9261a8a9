import type { RouteTableSnapshot, ServiceEntry } from '../../src/routes/model.js';
import { parseServiceParams } from '../../src/routes/params.js';

/** A route table from Docker Flow Proxy parameters, through the same validation as the API. */
export function snapshotOf(...services: Record<string, string>[]): RouteTableSnapshot {
  const entries = new Map<string, ServiceEntry>();
  for (const params of services) {
    const parsed = parseServiceParams(params);
    if (!parsed.ok) throw new Error(parsed.error.message);
    entries.set(parsed.service.name, { service: parsed.service, params: parsed.params, source: 'api' });
  }
  return { version: 1, services: entries };
}
