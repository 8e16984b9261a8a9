/**
 * What every discovery source does with the services it finds (Traefik's providers: each source
 * produces the same dynamic configuration): the full set it declares now becomes the table's
 * discovered routes (source 'swarm'). Each declared service is upserted, the discovered routes no
 * longer declared are removed, and routes sent through the API are never touched (the table
 * ignores a discovered entry for a name it holds from the API, see RouteTable.upsert).
 */
import type { Logger } from '../log.js';
import { parseServiceParams } from '../routes/params.js';
import type { ParseContext } from '../routes/params.js';
import type { RouteTable } from '../table/table.js';

export type DeclaredParams = Readonly<Record<string, string>>;

export class DeclaredServices {
  /** Last reason each invalid service was refused, so it is logged once per change. */
  private readonly reported = new Map<string, string>();

  constructor(
    private readonly table: RouteTable,
    private readonly parseContext: ParseContext,
    private readonly log: Logger,
    /** Where the services come from, for log lines ("Swarm service labels", "a peer's discovered routes"). */
    private readonly origin: string,
  ) {}

  /** `services`: name as the source knows it -> its reconfigure parameters. */
  async declare(services: ReadonlyMap<string, DeclaredParams>): Promise<void> {
    const declared = new Set<string>();
    for (const [name, params] of services) {
      const parsed = parseServiceParams(params, this.parseContext);
      if (!parsed.ok) {
        const reason = parsed.error.message;
        if (this.reported.get(name) !== reason) this.log.error({ service: name, reason }, `${this.origin} are invalid; not routed`);
        this.reported.set(name, reason);
        continue;
      }
      this.reported.delete(name);
      declared.add(parsed.service.name);
      const outcome = await this.table.upsert({ service: parsed.service, params: parsed.params, source: 'swarm' });
      if (!outcome.ok) this.log.error({ service: name, reason: outcome.message }, `service from ${this.origin} not routed`);
    }
    for (const [name, entry] of this.table.snapshot().services) {
      if (entry.source === 'swarm' && !declared.has(name)) await this.table.remove(name, 'swarm');
    }
  }
}
