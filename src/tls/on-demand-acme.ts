/**
 * ACME for the proxy, loaded on demand: the ACME client and its dependencies are slow to load,
 * so they are loaded once a service first asks for a certificate, not at every start-up.
 *
 * With several replicas, one orders: the one that leads (peers.ts), so the ACME server sees one
 * account and one order per certificate. Its challenges are answered by every replica (the
 * validation request may reach any of them), and the certificate it gets reaches the others
 * through replication. When the leader goes, the next one takes over the orders and renewals.
 */
import type { Logger } from '../log.js';
import type { Settings } from '../settings/settings.js';
import type { AcmeManager, AcmeStatus } from './acme.js';
import type { CertificateOutcome } from './certificate-table.js';
import type { Certificate } from './model.js';

export interface AcmeReplicas {
  /** Whether this replica orders; the others get the certificates through replication. */
  leads(): boolean;
  /** The certificate of a name, as served now. */
  current(name: string): Certificate | undefined;
  /** Stores an issued certificate, for every replica. */
  issued(name: string, bundle: string): Promise<CertificateOutcome>;
  /** Makes every replica answer an HTTP-01 challenge, this one first. */
  setChallenge(token: string, keyAuthorization: string): Promise<void>;
  removeChallenge(token: string): Promise<void>;
}

export class OnDemandAcme {
  private manager: AcmeManager | undefined;
  private loading: Promise<void> | undefined;
  private wanted: ReadonlyMap<string, readonly string[]> = new Map();
  private leading: boolean;
  private stopped = false;

  constructor(
    private readonly settings: Settings,
    private readonly replicas: AcmeReplicas,
    private readonly log: Logger,
  ) {
    this.leading = replicas.leads();
  }

  /** The certificates wanted: key (a service name) -> its domains. */
  follow(orders: ReadonlyMap<string, readonly string[]>): void {
    this.wanted = orders;
    this.apply();
  }

  /** To be called when the replicas may have changed: a new leader takes over the orders. */
  replicasChanged(): void {
    const leading = this.replicas.leads();
    if (leading === this.leading) return;
    this.leading = leading;
    this.log.info({ leading }, leading ? 'this replica now orders the ACME certificates' : 'another replica orders the ACME certificates now');
    this.apply();
  }

  private apply(): void {
    const orders = this.leading ? this.wanted : new Map<string, readonly string[]>();
    if (this.manager !== undefined) this.manager.follow(orders);
    else if (orders.size > 0) this.loading ??= this.load();
  }

  private async load(): Promise<void> {
    try {
      const { AcmeManager } = await import('./acme.js');
      if (this.stopped) return;
      this.manager = new AcmeManager({
        directoryUrl: this.settings.acme.directoryUrl,
        email: this.settings.acme.email,
        caFile: this.settings.acme.caFile,
        stateDir: this.settings.stateDir,
        renewBeforeDays: this.settings.acme.renewBeforeDays,
        challenges: { set: (token, value) => this.replicas.setChallenge(token, value), remove: (token) => this.replicas.removeChallenge(token) },
        issued: async (name, bundle) => {
          const outcome = await this.replicas.issued(name, bundle);
          if (!outcome.ok) throw new Error(outcome.message);
        },
        current: (name) => this.replicas.current(name),
        log: this.log,
      });
      this.apply();
    } catch (error) {
      this.loading = undefined; // the next route change tries again
      this.log.error({ reason: (error as Error).message }, 'ACME is not available; certificates asked for with letsencrypt=true are not ordered');
    }
  }

  status(): readonly AcmeStatus[] {
    return this.manager?.status() ?? [];
  }

  stop(): void {
    this.stopped = true;
    this.manager?.stop();
  }
}
