/**
 * Routes sent by hand survive the proxy task being restarted or rescheduled to another node,
 * without a volume: besides the local files, the hand-sent routes are kept in Swarm itself as a
 * Docker config (replicated by the managers' Raft store), written again after every saved
 * version that changes one of them. A new task with an empty state directory starts from the
 * newest such config. Discovered routes need no copy: they are rebuilt from the services' labels.
 */
import type Docker from 'dockerode';
import type { Logger } from '../../log.js';
import type { RouteTableSnapshot } from '../../routes/model.js';
import type { LoadedTable, RouteChange, RouteStore, StoredService } from '../../table/store.js';

/** Value: the proxy's service name, so several proxies in one Swarm keep their own routes. */
export const ROUTES_CONFIG_LABEL = 'com.flow-proxy.routes';
const VERSION_LABEL = 'com.flow-proxy.version';
/** Docker configs hold at most 500 KB. */
const MAX_CONFIG_BYTES = 500 * 1024;

interface SwarmCopy {
  readonly version: number;
  readonly services: readonly StoredService[];
}

export class SwarmMirroredStore implements RouteStore {
  /** The newest saved version whose copy is still to be made. */
  private toCopy: RouteTableSnapshot | undefined;
  private copying: Promise<void> | undefined;

  constructor(
    private readonly local: RouteStore,
    private readonly docker: Docker,
    private readonly proxyName: string,
    private readonly log: Logger,
  ) {}

  get file(): string {
    return this.local.file;
  }

  async load(): Promise<LoadedTable> {
    const local = await this.local.load();
    const copy = await this.newestCopy().catch((error: Error) => {
      this.log.error({ reason: error.message }, 'cannot read the routes kept in Swarm; starting from the local state only');
      return undefined;
    });
    if (copy === undefined || copy.version <= local.version) return local;
    this.log.info({ version: copy.version, services: copy.services.length }, 'routes sent by hand restored from Swarm');
    return { version: copy.version, services: copy.services };
  }

  /**
   * The acknowledgement waits for the local save only; the Swarm copy follows in the background,
   * one at a time, and when versions pile up only the newest is copied.
   */
  async save(snapshot: RouteTableSnapshot, changes: readonly RouteChange[]): Promise<void> {
    await this.local.save(snapshot, changes);
    // The copy holds hand-sent routes only: a version that changed none leaves it as it is.
    if (!changes.some((change) => change.before?.source === 'api' || change.after?.source === 'api')) return;
    this.toCopy = snapshot;
    this.copying ??= this.copyNewest();
  }

  /** Resolves once the newest saved version is copied to Swarm (or its copy failed and was logged). */
  async copied(): Promise<void> {
    while (this.copying !== undefined) await this.copying;
  }

  private async copyNewest(): Promise<void> {
    for (let next = this.toCopy; next !== undefined; next = this.toCopy) {
      this.toCopy = undefined;
      await this.copy(next);
    }
    this.copying = undefined;
  }

  private async copy(snapshot: RouteTableSnapshot): Promise<void> {
    const services = [...snapshot.services.values()].filter((e) => e.source === 'api').map(({ source, params }) => ({ source, params }));
    const data = JSON.stringify({ version: snapshot.version, services } satisfies SwarmCopy);
    try {
      if (data.length > MAX_CONFIG_BYTES) throw new Error(`the hand-sent routes take ${data.length} bytes, more than a Docker config holds`);
      const previous = await this.copies();
      await this.docker.createConfig({
        Name: `${this.proxyName}-routes-${snapshot.version}-${Date.now()}`,
        Labels: { [ROUTES_CONFIG_LABEL]: this.proxyName, [VERSION_LABEL]: String(snapshot.version) },
        Data: Buffer.from(data).toString('base64'),
      });
      await Promise.all(previous.map((config) => this.docker.getConfig(config.ID).remove().catch(() => undefined)));
    } catch (error) {
      // The local files have it: the change is durable on this node, only not yet across nodes.
      this.log.error({ reason: (error as Error).message, version: snapshot.version }, 'routes saved locally but not kept in Swarm');
    }
  }

  private async copies(): Promise<{ ID: string; version: number }[]> {
    const configs = await this.docker.listConfigs({ filters: { label: [`${ROUTES_CONFIG_LABEL}=${this.proxyName}`] } });
    return configs.map((config) => ({ ID: config.ID, version: Number(config.Spec?.Labels?.[VERSION_LABEL] ?? -1) }));
  }

  private async newestCopy(): Promise<SwarmCopy | undefined> {
    const newest = (await this.copies()).sort((a, b) => b.version - a.version)[0];
    if (newest === undefined) return undefined;
    const inspected = (await this.docker.getConfig(newest.ID).inspect()) as { Spec?: { Data?: string } };
    const parsed = JSON.parse(Buffer.from(inspected.Spec?.Data ?? '', 'base64').toString('utf8')) as SwarmCopy;
    if (!Number.isInteger(parsed.version) || !Array.isArray(parsed.services)) throw new Error('unknown format');
    return parsed;
  }
}
