/**
 * `flow-proxy listener`: a drop-in for Docker Flow Swarm Listener. It watches Swarm for services
 * with the notify label and sends GET notifications to one or more proxies (Flow Proxy or Docker
 * Flow Proxy) when they are created, updated or removed, with retries, and serves its
 * get-services and notify-services endpoints.
 */
import { setTimeout as delay } from 'node:timers/promises';
import Fastify from 'fastify';
import type { Logger } from '../../log.js';
import { paramsFromLabels } from '../swarm/labels.js';
import { SwarmServiceWatcher } from '../swarm/watcher.js';
import type { NotifyingServices } from '../swarm/watcher.js';

export interface ListenerSettings {
  readonly dockerHost: string;
  readonly notifyLabel: string;
  readonly createUrls: readonly string[];
  readonly removeUrls: readonly string[];
  readonly retries: number;
  readonly retryIntervalSeconds: number;
  readonly port: number;
  readonly address: string;
}

type Params = Record<string, string>;

export class ListenerSettingsError extends Error {}

/** Docker Flow Swarm Listener's environment variables. */
export function listenerSettings(env: Readonly<Record<string, string | undefined>>): ListenerSettings {
  const urls = (name: string) =>
    (env[name] ?? '')
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== '')
      .map((u) => {
        if (!/^https?:\/\/[^\s?#]+$/.test(u)) throw new ListenerSettingsError(`invalid ${name}: ${JSON.stringify(u)} is not an http(s) URL without query`);
        return u;
      });
  const count = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^[0-9]{1,5}$/.test(raw)) throw new ListenerSettingsError(`invalid ${name}: must be a whole number, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
  const createUrls = urls('DF_NOTIFY_CREATE_SERVICE_URL');
  const removeUrls = urls('DF_NOTIFY_REMOVE_SERVICE_URL');
  if (createUrls.length === 0) {
    throw new ListenerSettingsError('DF_NOTIFY_CREATE_SERVICE_URL is required, e.g. http://proxy:8080/v1/docker-flow-proxy/reconfigure');
  }
  return {
    dockerHost: env.DF_DOCKER_HOST ?? env.DOCKER_HOST ?? 'unix:///var/run/docker.sock',
    notifyLabel: env.DF_NOTIFY_LABEL ?? 'com.df.notify',
    createUrls,
    removeUrls,
    retries: count('DF_RETRY', 50),
    retryIntervalSeconds: count('DF_RETRY_INTERVAL', 5),
    port: count('LISTENER_PORT', 8080),
    address: env.LISTENER_BIND_ADDRESS ?? '0.0.0.0',
  };
}

export function queryOf(params: Params): string {
  return new URLSearchParams(Object.entries(params).sort(([a], [b]) => (a < b ? -1 : 1))).toString();
}

export class SwarmListener {
  private readonly watcher: SwarmServiceWatcher;
  /** What each proxy was last told about each service (its query string). */
  private readonly known = new Map<string, Params>();
  private readonly api = Fastify({ logger: false });
  /** Ends pending retries when the listener stops. */
  private readonly stopping = new AbortController();

  constructor(
    private readonly settings: ListenerSettings,
    private readonly log: Logger,
  ) {
    this.watcher = new SwarmServiceWatcher(
      { dockerHost: settings.dockerHost, notifyLabel: settings.notifyLabel, reconcileEverySeconds: 10 },
      (services) => this.reconcile(services),
      log,
    );
    this.api.get('/v1/docker-flow-swarm-listener/get-services', async () => [...this.known.values()]);
    this.api.get('/v1/docker-flow-swarm-listener/notify-services', async () => {
      for (const params of this.known.values()) void this.notify(this.settings.createUrls, params);
      return { Status: 'OK', Message: '' };
    });
    this.api.get('/v1/docker-flow-swarm-listener/ping', async () => ({ Status: 'OK', Message: '' }));
  }

  async start(): Promise<number> {
    await this.api.listen({ port: this.settings.port, host: this.settings.address });
    await this.watcher.start();
    const address = this.api.server.address();
    return typeof address === 'object' && address !== null ? address.port : this.settings.port;
  }

  private async reconcile(services: NotifyingServices): Promise<void> {
    for (const [name, labels] of services) {
      const params = paramsFromLabels(name, labels, this.settings.notifyLabel);
      const before = this.known.get(name);
      if (before !== undefined && queryOf(before) === queryOf(params)) continue;
      this.known.set(name, params);
      void this.notify(this.settings.createUrls, params);
    }
    for (const name of [...this.known.keys()]) {
      if (services.has(name)) continue;
      this.known.delete(name);
      void this.notify(this.settings.removeUrls, { serviceName: name });
    }
  }

  /** Sends to every URL; retries until accepted, refused for good (4xx, e.g. 409), or out of tries. */
  private async notify(urls: readonly string[], params: Params): Promise<void> {
    await Promise.all(
      urls.map(async (url) => {
        const target = `${url}?${queryOf(params)}`;
        const { signal } = this.stopping;
        for (let attempt = 1; attempt <= Math.max(1, this.settings.retries) && !signal.aborted; attempt++) {
          try {
            const response = await fetch(target, { signal: AbortSignal.timeout(10_000) });
            await response.text();
            if (response.ok) return;
            if (response.status >= 400 && response.status < 500) {
              this.log.error({ url, service: params.serviceName, status: response.status }, 'notification refused');
              return;
            }
          } catch {
            // not reachable yet
          }
          await delay(this.settings.retryIntervalSeconds * 1000, undefined, { signal }).catch(() => undefined);
        }
        if (signal.aborted) return;
        this.log.error({ url, service: params.serviceName }, 'notification not delivered after every retry');
      }),
    );
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.watcher.stop();
    await this.api.close();
  }
}
