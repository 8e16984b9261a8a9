/**
 * Swarm discovery: services labelled com.df.notify=true become routes, without any API call.
 * The source only talks to the route table: it upserts what Swarm declares (source 'swarm') and
 * removes the discovered routes of services that are gone, never routes sent through the API.
 * Routes sent through the API win over labels: the table itself ignores a 'swarm' entry for a
 * name it holds from the API (RouteTable.upsert), atomically, so this source does not check.
 */
import type { Logger } from '../../log.js';
import type { ParseContext } from '../../routes/params.js';
import type { RouteTable } from '../../table/table.js';
import { DeclaredServices } from '../declared.js';
import type { DeclaredParams } from '../declared.js';
import { NOTIFY_LABEL, paramsFromLabels } from './labels.js';
import { SwarmServiceWatcher } from './watcher.js';

export class SwarmDiscovery {
  private readonly watcher: SwarmServiceWatcher;
  private readonly declared: DeclaredServices;

  constructor(
    table: RouteTable,
    dockerHost: string,
    log: Logger,
    parseContext: ParseContext,
    onEvent: () => void = () => undefined,
  ) {
    this.declared = new DeclaredServices(table, parseContext, log, 'Swarm service labels');
    this.watcher = new SwarmServiceWatcher(
      { dockerHost, notifyLabel: NOTIFY_LABEL, reconcileEverySeconds: 10, onEvent },
      (services) => this.declared.declare(new Map<string, DeclaredParams>([...services].map(([name, labels]) => [name, paramsFromLabels(name, labels)]))),
      log,
    );
  }

  start(): Promise<void> {
    return this.watcher.start();
  }

  /** Whether the routes discovered are Swarm's current ones: its last listing succeeded. */
  get current(): boolean {
    return this.watcher.listed;
  }

  stop(): void {
    this.watcher.stop();
  }
}
