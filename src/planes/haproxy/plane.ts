/**
 * The HAProxy data plane. Each candidate table is rendered and checked with `haproxy -c` in a
 * staging directory before anything live is touched. A change that only moves routes between
 * backends the running worker already has is applied through the runtime API (atomic map
 * swaps, no reload); a change that needs a new backend reloads the master, which hands the
 * listening sockets to the new worker without refusing a connection.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../log.js';
import type { RouteTableSnapshot } from '../../routes/model.js';
import type { Settings } from '../../settings/settings.js';
import type { CertificateSet } from '../../tls/model.js';
import { checkChallenge } from '../../tls/challenge.js';
import { certificatePins } from '../../tls/pins.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import type { DataPlane, PlaneStatus } from '../plane.js';
import { PlaneRejection } from '../plane.js';
import { crtListText, renderCrtList, updateCrtList, writeCrtList } from './certificates.js';
import type { CrtList } from './certificates.js';
import { checkConfig, HaproxyCheckFailed, HaproxyProcess } from './process.js';
import { ACME_MAP, CRT_LIST, MAP_FILES, renderHaproxy } from './render.js';
import type { MapFile, RenderedHaproxy } from './render.js';
import { replaceMap } from './runtime.js';

interface Loaded {
  readonly frame: string;
  readonly backends: ReadonlyMap<string, string>;
  /** Map contents as the running worker holds them. */
  maps: Record<MapFile, string>;
}

export class HaproxyPlane implements DataPlane {
  readonly kind = 'haproxy' as const;
  private readonly liveDir: string;
  private readonly stagingDir: string;
  private readonly runDir: string;
  private readonly process: HaproxyProcess;
  private nameservers: readonly string[] = [];
  private loaded: Loaded | undefined;
  private current: RouteTableSnapshot = { version: 0, services: new Map() };
  private lastError: string | undefined;
  private reloads = 0;
  private runtimeUpdates = 0;
  private certificateUpdates = 0;
  private certificates: CertificateSet | undefined;
  /** The crt-list as the running worker holds it (and as written to disk). */
  private crtList: CrtList = new Map();
  private readonly challenges = new Map<string, string>();
  /** Route and certificate changes arrive from two tables; HAProxy sees one at a time. */
  private exclusive: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly settings: Settings,
    private readonly log: Logger,
  ) {
    this.liveDir = path.join(settings.stateDir, 'haproxy');
    this.stagingDir = path.join(settings.stateDir, 'haproxy', 'staging');
    this.runDir = path.join(settings.stateDir, 'run');
    this.process = new HaproxyProcess(settings.haproxyBinary, path.join(this.liveDir, 'haproxy.cfg'), this.runDir, log);
  }

  private render(snapshot: RouteTableSnapshot, mapDir: string): RenderedHaproxy {
    return renderHaproxy(snapshot, { settings: this.settings, mapDir, runtimeDir: this.liveDir, runDir: this.runDir, nameservers: this.nameservers });
  }

  private async write(rendered: RenderedHaproxy, dir: string): Promise<string> {
    for (const file of MAP_FILES) await writeFileAtomic(path.join(dir, file), rendered.maps[file]);
    const configFile = path.join(dir, 'haproxy.cfg');
    await writeFileAtomic(configFile, rendered.config);
    return configFile;
  }

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.exclusive.then(task, task);
    this.exclusive = run.catch(() => undefined);
    return run;
  }

  private get crtListFile(): string {
    return path.join(this.liveDir, CRT_LIST);
  }

  private get acmeMapFile(): string {
    return path.join(this.liveDir, ACME_MAP);
  }

  private renderCertificates(snapshot: RouteTableSnapshot, certificates: CertificateSet): CrtList {
    return renderCrtList(certificates, certificatePins(snapshot), path.join(this.liveDir, 'certs'));
  }

  private acmeMapText(): string {
    return [...this.challenges].map(([token, value]) => `${token} ${value}\n`).join('');
  }

  async start(initial: RouteTableSnapshot, certificates: CertificateSet): Promise<void> {
    this.nameservers = await resolveNameservers(this.settings, this.log);
    this.certificates = certificates;
    const rendered = this.render(initial, this.liveDir);
    try {
      const crtList = this.renderCertificates(initial, certificates);
      await writeCrtList(crtList, this.crtListFile);
      this.crtList = crtList;
      await writeFileAtomic(this.acmeMapFile, this.acmeMapText());
      await this.validate(initial);
      await this.write(rendered, this.liveDir);
    } catch (error) {
      if (error instanceof PlaneRejection || !(await this.hasLiveConfig())) throw error;
      // A full disk or read-only state directory must not keep the edge down: serve the last
      // configuration written (atomically) and report the problem; the next change retries.
      this.lastError = `could not write the configuration (${(error as Error).message}); serving the last one written`;
      this.log.error({ reason: (error as Error).message }, 'starting HAProxy from the last configuration written');
      await this.process.start();
      this.current = initial;
      return;
    }
    await this.process.start();
    this.loaded = { frame: rendered.frame, backends: rendered.backends, maps: { ...rendered.maps } };
    this.current = initial;
  }

  private async hasLiveConfig(): Promise<boolean> {
    return readFile(path.join(this.liveDir, 'haproxy.cfg'), 'utf8').then(
      (text) => text.startsWith('# Generated by Flow Proxy'),
      () => false,
    );
  }

  async validate(candidate: RouteTableSnapshot): Promise<void> {
    const configFile = await this.write(this.render(candidate, this.stagingDir), this.stagingDir);
    try {
      await checkConfig(this.settings.haproxyBinary, configFile);
    } catch (error) {
      if (error instanceof HaproxyCheckFailed) throw new PlaneRejection(`haproxy -c: ${error.message}`);
      throw error;
    }
  }

  apply(snapshot: RouteTableSnapshot): Promise<void> {
    return this.serialized(async () => {
      try {
        const rendered = this.render(snapshot, this.liveDir);
        await this.write(rendered, this.liveDir);
        const crtList = this.certificates === undefined ? this.crtList : this.renderCertificates(snapshot, this.certificates);
        if (this.loaded !== undefined && this.process.running && servesWithoutReload(this.loaded, rendered)) {
          await this.updateMaps(this.loaded, rendered);
          await this.updateCertificates(crtList);
        } else {
          await this.writeCertificates(crtList);
          await this.restartOrReload();
          this.loaded = { frame: rendered.frame, backends: rendered.backends, maps: { ...rendered.maps } };
        }
        this.current = snapshot;
        this.lastError = undefined;
      } catch (error) {
        this.lastError = (error as Error).message;
        throw error;
      }
    });
  }

  applyCertificates(certificates: CertificateSet): Promise<void> {
    return this.serialized(async () => {
      this.certificates = certificates;
      await this.updateCertificates(this.renderCertificates(this.current, certificates));
    });
  }

  private async writeCertificates(crtList: CrtList): Promise<void> {
    await writeCrtList(crtList, this.crtListFile, this.crtList);
    this.crtList = crtList;
  }

  /** Through the runtime API when HAProxy takes it; otherwise a reload from the files. */
  private async updateCertificates(crtList: CrtList): Promise<void> {
    const loaded = this.crtList;
    if (!this.process.running) {
      await this.writeCertificates(crtList);
      return;
    }
    try {
      if (await updateCrtList(this.process.adminSocket, this.crtListFile, loaded, crtList)) this.certificateUpdates++;
      await this.writeCertificates(crtList);
    } catch (error) {
      this.log.warn({ reason: (error as Error).message }, 'certificates changed by a reload: the runtime API did not take the change');
      await this.writeCertificates(crtList);
      await this.restartOrReload();
    }
  }

  setAcmeChallenge(token: string, keyAuthorization: string): Promise<void> {
    checkChallenge(token, keyAuthorization);
    return this.serialized(async () => {
      this.challenges.set(token, keyAuthorization);
      await this.writeChallenges();
    });
  }

  removeAcmeChallenge(token: string): Promise<void> {
    return this.serialized(async () => {
      if (this.challenges.delete(token)) await this.writeChallenges();
    });
  }

  private async writeChallenges(): Promise<void> {
    const text = this.acmeMapText();
    await writeFileAtomic(this.acmeMapFile, text);
    if (this.process.running) await replaceMap(this.process.adminSocket, this.acmeMapFile, text);
  }

  private async updateMaps(loaded: Loaded, rendered: RenderedHaproxy): Promise<void> {
    for (const file of MAP_FILES) {
      if (loaded.maps[file] === rendered.maps[file]) continue;
      await replaceMap(this.process.adminSocket, path.join(this.liveDir, file), rendered.maps[file]);
      loaded.maps[file] = rendered.maps[file];
    }
    this.runtimeUpdates++;
  }

  private async restartOrReload(): Promise<void> {
    if (this.process.running) {
      await this.process.reload();
      this.reloads++;
    } else {
      this.log.error('haproxy was not running; starting it again');
      await this.process.start();
    }
  }

  reload(): Promise<void> {
    return this.serialized(async () => {
      const rendered = this.render(this.current, this.liveDir);
      await this.write(rendered, this.liveDir);
      await this.restartOrReload();
      this.loaded = { frame: rendered.frame, backends: rendered.backends, maps: { ...rendered.maps } };
    });
  }

  status(): PlaneStatus {
    return {
      kind: this.kind,
      ready: this.process.running,
      version: this.current.version,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
      details: { reloads: this.reloads, runtimeUpdates: this.runtimeUpdates, certificateUpdates: this.certificateUpdates },
    };
  }

  async describe(): Promise<string> {
    const parts = [await readFile(path.join(this.liveDir, 'haproxy.cfg'), 'utf8')];
    for (const file of MAP_FILES) {
      parts.push(`# ---- map file ${path.join(this.liveDir, file)} ----\n${await readFile(path.join(this.liveDir, file), 'utf8')}`);
    }
    parts.push(`# ---- crt-list ${this.crtListFile} ----\n${crtListText(this.crtList)}`);
    return parts.join('\n');
  }

  async stop(): Promise<void> {
    await this.process.stop(this.settings.stopGrace);
  }
}

/** True when the running worker already has every backend the new configuration needs. */
function servesWithoutReload(loaded: Loaded, next: RenderedHaproxy): boolean {
  if (loaded.frame !== next.frame) return false;
  for (const [name, text] of next.backends) if (loaded.backends.get(name) !== text) return false;
  return true;
}

async function resolveNameservers(settings: Settings, log: Logger): Promise<readonly string[]> {
  if (settings.dnsServers.length > 0) return settings.dnsServers;
  const text = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
  const found = [...text.matchAll(/^\s*nameserver\s+([0-9]{1,3}(?:\.[0-9]{1,3}){3})\s*$/gm)].map((m) => `${m[1]}:53`);
  if (found.length === 0) {
    log.warn('no IPv4 nameserver in /etc/resolv.conf; service names will not resolve until --dns-servers is set');
    return ['127.0.0.1:53'];
  }
  return found;
}
