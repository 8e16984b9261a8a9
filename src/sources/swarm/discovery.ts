/**
 * Swarm discovery: services labelled com.df.notify=true become routes, without any API call.
 * Service events trigger a reconciliation within milliseconds; a full reconciliation also runs
 * periodically, so a missed event (or a restart of dockerd) only delays a change. The source
 * only talks to the route table: it upserts what Swarm declares (source 'swarm') and removes
 * the discovered routes of services that are gone, never routes sent through the API.
 */
import Docker from 'dockerode';
import type { Logger } from '../../log.js';
import { parseServiceParams } from '../../routes/params.js';
import type { RouteTable } from '../../table/table.js';
import { isNotifying, NOTIFY_LABEL, paramsFromLabels } from './labels.js';

export interface SwarmDiscoveryOptions {
  /** Docker Engine socket or URL: unix:///var/run/docker.sock, tcp://host:2375, or a socket path. */
  readonly dockerHost: string;
  readonly reconcileEverySeconds: number;
}

export function dockerClient(dockerHost: string): Docker {
  if (dockerHost.startsWith('unix://')) return new Docker({ socketPath: dockerHost.slice('unix://'.length) });
  if (dockerHost.startsWith('/')) return new Docker({ socketPath: dockerHost });
  const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: 'http' });
}

export class SwarmDiscovery {
  private readonly docker: Docker;
  private timer: NodeJS.Timeout | undefined;
  private events: NodeJS.ReadableStream | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private again = false;
  /** Last invalid label set reported per service, so a bad service is logged once per change. */
  private readonly reported = new Map<string, string>();

  constructor(
    private readonly table: RouteTable,
    private readonly options: SwarmDiscoveryOptions,
    private readonly log: Logger,
  ) {
    this.docker = dockerClient(options.dockerHost);
  }

  async start(): Promise<void> {
    await this.reconcile();
    this.timer = setInterval(() => void this.reconcile(), this.options.reconcileEverySeconds * 1000);
    this.timer.unref();
    void this.watch();
  }

  /** Follows service events; reconnects after a pause when the stream ends or fails. */
  private async watch(): Promise<void> {
    while (!this.stopped) {
      try {
        const stream = (await this.docker.getEvents({ filters: { type: ['service'] } })) as NodeJS.ReadableStream;
        this.events = stream;
        await new Promise<void>((resolve) => {
          stream.on('data', () => void this.reconcile());
          stream.on('end', resolve);
          stream.on('error', resolve);
          stream.on('close', resolve);
        });
      } catch (error) {
        this.log.error({ reason: (error as Error).message, dockerHost: this.options.dockerHost }, 'cannot follow Swarm events; retrying');
      }
      if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  /** One reconciliation at a time; a request during one schedules exactly one more. */
  reconcile(): Promise<void> {
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    this.running = this.reconcileOnce()
      .catch((error: Error) => this.log.error({ reason: error.message, dockerHost: this.options.dockerHost }, 'cannot list Swarm services; retrying'))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.reconcile();
        }
      });
    return this.running;
  }

  private async reconcileOnce(): Promise<void> {
    const services = await this.docker.listServices({ filters: { label: [`${NOTIFY_LABEL}=true`] } });
    const declared = new Set<string>();
    for (const service of services) {
      const name = service.Spec?.Name;
      const labels = service.Spec?.Labels ?? {};
      if (name === undefined || !isNotifying(labels)) continue;
      const parsed = parseServiceParams(paramsFromLabels(name, labels));
      if (!parsed.ok) {
        const reason = parsed.error.message;
        if (this.reported.get(name) !== reason) this.log.error({ service: name, reason }, 'Swarm service labels are invalid; not routed');
        this.reported.set(name, reason);
        continue;
      }
      this.reported.delete(name);
      declared.add(parsed.service.name);
      const current = this.table.snapshot().services.get(parsed.service.name);
      if (current?.source === 'api') continue; // a route sent by hand wins over labels
      const outcome = await this.table.upsert({ service: parsed.service, params: parsed.params, source: 'swarm' });
      if (!outcome.ok) this.log.error({ service: name, reason: outcome.message }, 'Swarm service not routed');
    }
    for (const [name, entry] of this.table.snapshot().services) {
      if (entry.source === 'swarm' && !declared.has(name)) await this.table.remove(name, 'swarm');
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    (this.events as { destroy?: () => void } | undefined)?.destroy?.();
  }
}
