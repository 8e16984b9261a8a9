/**
 * Swarm discovery: services labelled com.df.notify=true become routes, without any API call.
 * The source only talks to the route table: it upserts what Swarm declares (source 'swarm') and
 * removes the discovered routes of services that are gone, never routes sent through the API.
 * Routes sent through the API win over labels: the table itself ignores a 'swarm' entry for a
 * name it holds from the API (RouteTable.upsert), atomically, so this source does not check.
 */
import type { Logger } from '../../log.js';
import { parseServiceParams } from '../../routes/params.js';
import type { ParseContext } from '../../routes/params.js';
import type { RouteTable } from '../../table/table.js';
import { NOTIFY_LABEL, paramsFromLabels } from './labels.js';
import { SwarmServiceWatcher } from './watcher.js';
import type { NotifyingServices } from './watcher.js';

export class SwarmDiscovery {
  private readonly watcher: SwarmServiceWatcher;
  /** Last invalid label set reported per service, so a bad service is logged once per change. */
  private readonly reported = new Map<string, string>();

  constructor(
    private readonly table: RouteTable,
    dockerHost: string,
    private readonly log: Logger,
    private readonly parseContext: ParseContext,
    onEvent: () => void = () => undefined,
  ) {
    this.watcher = new SwarmServiceWatcher(
      { dockerHost, notifyLabel: NOTIFY_LABEL, reconcileEverySeconds: 10, onEvent },
      (services) => this.reconcile(services),
      log,
    );
  }

  start(): Promise<void> {
    return this.watcher.start();
  }

  private async reconcile(services: NotifyingServices): Promise<void> {
    const declared = new Set<string>();
    for (const [name, labels] of services) {
      const parsed = parseServiceParams(paramsFromLabels(name, labels), this.parseContext);
      if (!parsed.ok) {
        const reason = parsed.error.message;
        if (this.reported.get(name) !== reason) this.log.error({ service: name, reason }, 'Swarm service labels are invalid; not routed');
        this.reported.set(name, reason);
        continue;
      }
      this.reported.delete(name);
      declared.add(parsed.service.name);
      const outcome = await this.table.upsert({ service: parsed.service, params: parsed.params, source: 'swarm' });
      if (!outcome.ok) this.log.error({ service: name, reason: outcome.message }, 'Swarm service not routed');
    }
    for (const [name, entry] of this.table.snapshot().services) {
      if (entry.source === 'swarm' && !declared.has(name)) await this.table.remove(name, 'swarm');
    }
  }

  stop(): void {
    this.watcher.stop();
  }
}
