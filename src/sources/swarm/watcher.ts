/**
 * Watches Swarm for services carrying the notify label and hands the full current set to a
 * callback: at start, on every service event (create, update, remove), and periodically, so a
 * missed event (or a restart of dockerd) only delays a change. One pass runs at a time; events
 * during a pass schedule exactly one more.
 */
import Docker from 'dockerode';
import type { Logger } from '../../log.js';

export type Labels = Readonly<Record<string, string>>;
/** Service name -> its labels, for every service whose notify label is "true". */
export type NotifyingServices = ReadonlyMap<string, Labels>;

export function dockerClient(dockerHost: string): Docker {
  if (dockerHost.startsWith('unix://')) return new Docker({ socketPath: dockerHost.slice('unix://'.length) });
  if (dockerHost.startsWith('/')) return new Docker({ socketPath: dockerHost });
  const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: 'http' });
}

export interface WatcherOptions {
  readonly dockerHost: string;
  readonly notifyLabel: string;
  readonly reconcileEverySeconds: number;
  /** Called for every service event received (metrics). */
  readonly onEvent?: () => void;
}

export class SwarmServiceWatcher {
  private readonly docker: Docker;
  private timer: NodeJS.Timeout | undefined;
  private events: NodeJS.ReadableStream | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private again = false;
  private listing = false;

  constructor(
    private readonly options: WatcherOptions,
    private readonly onServices: (services: NotifyingServices) => Promise<void>,
    private readonly log: Logger,
  ) {
    this.docker = dockerClient(options.dockerHost);
  }

  /** Resolves after the first pass, so callers start from Swarm's current state. */
  async start(): Promise<void> {
    await this.pass();
    this.timer = setInterval(() => void this.pass(), this.options.reconcileEverySeconds * 1000);
    this.timer.unref();
    void this.watch();
  }

  private async watch(): Promise<void> {
    while (!this.stopped) {
      try {
        const stream = (await this.docker.getEvents({ filters: { type: ['service'] } })) as NodeJS.ReadableStream;
        this.events = stream;
        await new Promise<void>((resolve) => {
          stream.on('data', () => {
            this.options.onEvent?.();
            void this.pass();
          });
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

  /** Whether the last listing of Swarm's services succeeded. */
  get listed(): boolean {
    return this.listing;
  }

  pass(): Promise<void> {
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    this.running = this.passOnce()
      .then(() => {
        this.listing = true;
      })
      .catch((error: Error) => {
        this.listing = false;
        this.log.error({ reason: error.message, dockerHost: this.options.dockerHost }, 'cannot list Swarm services; retrying');
      })
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.pass();
        }
      });
    return this.running;
  }

  private async passOnce(): Promise<void> {
    const listed = await this.docker.listServices({ filters: { label: [`${this.options.notifyLabel}=true`] } });
    const services = new Map<string, Labels>();
    for (const service of listed) {
      const name = service.Spec?.Name;
      const labels = service.Spec?.Labels ?? {};
      if (name !== undefined && labels[this.options.notifyLabel] === 'true') services.set(name, labels);
    }
    await this.onServices(services);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    (this.events as { destroy?: () => void } | undefined)?.destroy?.();
  }
}
