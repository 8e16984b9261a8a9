import type { Service } from '../routes/model.js';
import type { Settings } from '../settings/settings.js';
import type { WantedName } from './model.js';

/**
 * The host name a service's replicas are reached by, and how many of its addresses are used:
 * outboundHostname (a backend outside the Swarm) as given, `tasks.NAME` (every task) in
 * addressMode=tasks, else the service name (its VIP).
 */
export function backendHost(service: Service, settings: Pick<Settings, 'addressMode' | 'maxTasks'>): WantedName {
  if (service.outboundHostname !== undefined) return { name: service.outboundHostname, limit: settings.maxTasks };
  if ((service.addressMode ?? settings.addressMode) === 'tasks') return { name: `tasks.${service.name}`, limit: settings.maxTasks };
  return { name: service.name, limit: 1 };
}
