/**
 * LISTENER_ADDRESS: a proxy started next to a Swarm Listener pulls every service from it at
 * start-up (its get-services endpoint), retrying until the listener answers.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../../log.js';
import { parseServiceParams } from '../../routes/params.js';
import type { ParseContext } from '../../routes/params.js';
import type { RouteTable } from '../../table/table.js';

export function listenerUrl(address: string): string {
  const base = address.includes('://') ? address : `http://${address}`;
  const withPort = /:\d+$/.test(new URL(base).host) ? base : `${base}:8080`;
  return `${withPort}/v1/docker-flow-swarm-listener/get-services`;
}

export async function pullFromListener(address: string, table: RouteTable, log: Logger, signal: AbortSignal, parseContext: ParseContext): Promise<void> {
  const url = listenerUrl(address);
  while (!signal.aborted) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (response.ok) {
        const services = (await response.json()) as Record<string, string>[];
        for (const params of services) {
          const parsed = parseServiceParams(params, parseContext);
          if (!parsed.ok) {
            log.error({ service: params.serviceName, reason: parsed.error.message }, 'service from the listener not routed');
            continue;
          }
          await table.upsert({ service: parsed.service, params: parsed.params, source: 'swarm' });
        }
        log.info({ url, services: services.length }, 'services pulled from the Swarm Listener');
        return;
      }
    } catch {
      // the listener is not up yet
    }
    await delay(2000, undefined, { signal }).catch(() => undefined);
  }
}
