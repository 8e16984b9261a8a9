/**
 * Automatic certificates by ACME (RFC 8555) with HTTP-01 challenges, through acme-client. The
 * manager follows the set of certificates wanted, orders them one at a time, renews them before
 * they expire and retries failures with exponential back-off. A served certificate is only
 * replaced once its successor has been issued.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { Client, axios, crypto as acmeCrypto } from 'acme-client';
import type { Logger } from '../log.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { CERT_NAME } from './model.js';

export interface ChallengeResponder {
  /** From now on, GET /.well-known/acme-challenge/<token> on port 80 answers `keyAuthorization`. */
  set(token: string, keyAuthorization: string): Promise<void>;
  remove(token: string): Promise<void>;
}

/** What is already served under a certificate name (a Certificate fits). */
export interface ServedCertificate {
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly names: readonly string[];
}

export interface AcmeOptions {
  readonly directoryUrl: string;
  readonly email?: string;
  /** PEM CA bundle trusted for the ACME server's own HTTPS (a private or test CA). */
  readonly caFile?: string;
  readonly stateDir: string;
  readonly renewBeforeDays?: number;
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
  readonly challenges: ChallengeResponder;
  /** Receives each new certificate: chain (leaf first) then key, PEM. `name` is acme-<first domain>. */
  readonly issued: (name: string, bundlePem: string) => Promise<void>;
  /** The certificate served under `name` now, so that a restart does not order again. */
  readonly current: (name: string) => ServedCertificate | undefined;
  readonly log: Logger;
  readonly now?: () => Date;
}

export type AcmeState = 'pending' | 'valid' | 'renewing' | 'failed';

export interface AcmeStatus {
  readonly key: string;
  /** The certificate name (acme-<first domain>); keys with the same first domain share it. */
  readonly certificate: string;
  readonly domains: readonly string[];
  readonly state: AcmeState;
  /** Why the last order failed; kept until an order succeeds. */
  readonly lastError?: string;
  /** When the next order may start: after a failure's back-off, or the planned renewal. */
  readonly nextAttemptAt?: Date;
  readonly notAfter?: Date;
}

interface Entry {
  readonly name: string;
  /** The domains each key asked for; the certificate covers their union. */
  requests: Map<string, readonly string[]>;
  domains: readonly string[];
  served: ServedCertificate | undefined;
  failures: number;
  retryAt: number | undefined;
  lastError: string | undefined;
}

const RATE_LIMITED = 'urn:ietf:params:acme:error:rateLimited';
const REQUEST_TIMEOUT_MS = 30_000;
const DAY_MS = 86_400_000;
/** setTimeout's limit is about 24.8 days; waking up every 12 h also survives clock jumps. */
const MAX_TIMER_MS = 12 * 3_600_000;

class RateLimited extends Error {
  constructor(
    detail: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(detail);
  }
}

export class AcmeManager {
  private readonly entries = new Map<string, Entry>();
  private readonly renewBeforeMs: number;
  private readonly retry: { readonly initialMs: number; readonly maxMs: number };
  private readonly now: () => Date;
  private readonly interceptors: { request: number; response: number };
  private client: Promise<Client> | undefined;
  private worker: Promise<void> | undefined;
  private inFlight: Entry | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: AcmeOptions) {
    this.renewBeforeMs = (options.renewBeforeDays ?? 30) * DAY_MS;
    this.retry = options.retry ?? { initialMs: 60_000, maxMs: 6 * 3_600_000 };
    this.now = options.now ?? (() => new Date());
    const origin = new URL(options.directoryUrl).origin;
    const agent = options.caFile === undefined ? undefined : new https.Agent({ ca: readCa(options.caFile) });
    // acme-client's axios instance would itself retry 429s, sleeping for each Retry-After (hours
    // at Let's Encrypt) while every other order waits: retries are this manager's job.
    (axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings.retryMaxAttempts = 0;
    this.interceptors = {
      request: axios.interceptors.request.use((config) => {
        if (config.url === undefined || new URL(config.url).origin !== origin) return config;
        config.timeout = REQUEST_TIMEOUT_MS;
        if (agent !== undefined) config.httpsAgent = agent;
        return config;
      }),
      // acme-client reduces problem documents to their detail; keep a rate limit's Retry-After.
      response: axios.interceptors.response.use((response) => {
        const problem: unknown = response.data;
        if (typeof problem === 'object' && problem !== null && 'type' in problem && problem.type === RATE_LIMITED) {
          const detail = 'detail' in problem && typeof problem.detail === 'string' ? problem.detail : 'rate limited by the ACME server';
          throw new RateLimited(detail, retryAfterMs(response.headers['retry-after']));
        }
        return response;
      }),
    };
  }

  /** Sets the certificates wanted: key (e.g. a service name) → DNS names, the first one primary. */
  follow(orders: ReadonlyMap<string, readonly string[]>): void {
    const wanted = new Map<string, Map<string, readonly string[]>>();
    for (const [key, names] of orders) {
      const domains = [...new Set(names.map((name) => name.toLowerCase()))];
      if (domains[0] === undefined) continue;
      const name = `acme-${domains[0]}`;
      wanted.set(name, (wanted.get(name) ?? new Map<string, readonly string[]>()).set(key, domains));
    }
    for (const name of this.entries.keys()) if (!wanted.has(name)) this.entries.delete(name);
    for (const [name, requests] of wanted) {
      const domains = [...new Set([...requests.values()].flat())];
      const entry = this.entries.get(name);
      if (entry === undefined) {
        const served = this.options.current(name);
        this.entries.set(name, { name, requests, domains, served, failures: 0, retryAt: undefined, lastError: undefined });
      } else {
        entry.requests = requests;
        entry.domains = domains;
      }
    }
    void this.kick();
  }

  /** Orders every certificate that is due now; resolves once no order is left to run. */
  checkNow(): Promise<void> {
    return this.kick();
  }

  status(): readonly AcmeStatus[] {
    const now = this.now().getTime();
    return [...this.entries.values()].flatMap((entry) => {
      const due = this.dueAt(entry);
      const ordering = entry === this.inFlight || (entry.lastError === undefined && due <= now);
      const state: AcmeState = ordering ? (entry.served === undefined ? 'pending' : 'renewing') : entry.lastError === undefined ? 'valid' : 'failed';
      return [...entry.requests].map(([key, domains]) => ({
        key,
        certificate: entry.name,
        domains,
        state,
        lastError: entry.lastError,
        nextAttemptAt: entry !== this.inFlight && due > now ? new Date(due) : undefined,
        notAfter: entry.served?.notAfter,
      }));
    });
  }

  /** Clears timers; an order in flight is abandoned (its certificate is not handed over). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    axios.interceptors.request.eject(this.interceptors.request);
    axios.interceptors.response.eject(this.interceptors.response);
  }

  private kick(): Promise<void> {
    if (this.worker === undefined && !this.stopped) {
      this.worker = this.work().finally(() => {
        this.worker = undefined;
        this.schedule();
      });
    }
    return this.worker ?? Promise.resolve();
  }

  private async work(): Promise<void> {
    for (let entry = this.nextDue(); entry !== undefined; entry = this.nextDue()) await this.order(entry);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.stopped || this.entries.size === 0) return;
    const next = Math.min(...[...this.entries.values()].map((entry) => this.dueAt(entry)));
    const delay = Math.min(Math.max(next - this.now().getTime(), 0), MAX_TIMER_MS);
    this.timer = setTimeout(() => void this.kick(), delay).unref();
  }

  /** The entry due the longest, if any. */
  private nextDue(): Entry | undefined {
    if (this.stopped) return undefined;
    const now = this.now().getTime();
    let best: Entry | undefined;
    for (const entry of this.entries.values()) {
      const due = this.dueAt(entry);
      if (due <= now && (best === undefined || due < this.dueAt(best))) best = entry;
    }
    return best;
  }

  /** When the entry needs an order (ms since the epoch): now if nothing covering it is served. */
  private dueAt(entry: Entry): number {
    const { served } = entry;
    const covered = served !== undefined && entry.domains.every((domain) => served.names.includes(domain));
    // A lifetime shorter than renewBeforeDays would renew in a loop: never renew before a third of it has passed.
    const renewAt = covered ? Math.max(served.notAfter.getTime() - this.renewBeforeMs, (2 * served.notBefore.getTime() + served.notAfter.getTime()) / 3) : 0;
    return Math.max(renewAt, entry.retryAt ?? 0);
  }

  private async order(entry: Entry): Promise<void> {
    const { name, domains } = entry;
    this.inFlight = entry;
    this.options.log.info({ certificate: name, domains }, 'ordering an ACME certificate');
    try {
      // Checked before ordering: the certificate table would refuse the name after issuance.
      if (!CERT_NAME.test(name)) throw new Error(`${domains[0]} cannot name a certificate (${name} must match ${CERT_NAME})`);
      const client = await this.account();
      const key = await acmeCrypto.createPrivateEcdsaKey();
      const [, csr] = await acmeCrypto.createCsr({ commonName: domains[0], altNames: [...domains] }, key);
      const chain = await client.auto({
        csr,
        termsOfServiceAgreed: true,
        // acme-client would first fetch the token itself through public DNS and port 80, which
        // a proxy behind NAT often cannot reach; the ACME server's validation is what counts.
        skipChallengeVerification: true,
        challengePriority: ['http-01'],
        challengeCreateFn: async (authz, challenge, keyAuthorization) => {
          if (challenge.type !== 'http-01') {
            throw new Error(`the ACME server offers no http-01 challenge for ${authz.identifier.value} (wildcard names need dns-01, which is not supported)`);
          }
          await this.options.challenges.set(challenge.token, keyAuthorization);
        },
        challengeRemoveFn: (_authz, challenge) => this.options.challenges.remove(challenge.token),
      });
      if (this.stopped || this.entries.get(name) !== entry) return;
      const bundle = `${chain.trim()}\n${key.toString().trim()}\n`;
      await this.options.issued(name, bundle);
      const leaf = new X509Certificate(chain);
      entry.served = { notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), names: domains };
      entry.failures = 0;
      entry.retryAt = undefined;
      entry.lastError = undefined;
      this.options.log.info({ certificate: name, domains, notAfter: entry.served.notAfter }, 'ACME certificate issued');
    } catch (error) {
      if (!this.stopped) this.failed(entry, error);
    } finally {
      this.inFlight = undefined;
    }
  }

  private failed(entry: Entry, error: unknown): void {
    entry.failures++;
    const backOff = Math.min(this.retry.initialMs * 2 ** (entry.failures - 1), this.retry.maxMs);
    const delay = error instanceof RateLimited ? (error.retryAfterMs ?? this.retry.maxMs) : backOff;
    entry.retryAt = this.now().getTime() + delay;
    entry.lastError = (error instanceof Error ? error.message : String(error)) || 'the ACME server gave no detail';
    this.options.log.warn(
      { certificate: entry.name, domains: entry.domains, error: entry.lastError, nextAttemptAt: new Date(entry.retryAt) },
      'ACME order failed; the certificate served so far, if any, keeps serving',
    );
  }

  private account(): Promise<Client> {
    this.client ??= this.register().catch((error: unknown) => {
      this.client = undefined;
      throw error;
    });
    return this.client;
  }

  /** Loads the account key (creating it on first use) and registers it; an existing account is reused. */
  private async register(): Promise<Client> {
    const file = path.join(this.options.stateDir, 'acme', 'account.key');
    let accountKey: string;
    try {
      accountKey = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      accountKey = (await acmeCrypto.createPrivateEcdsaKey()).toString();
      await writeFileAtomic(file, accountKey);
    }
    // Status polls start at 1 s (acme-client's default is 5 s) and give up after about 2.5 min.
    const client = new Client({ directoryUrl: this.options.directoryUrl, accountKey, backoffMin: 1000 });
    const contact = this.options.email === undefined ? {} : { contact: [`mailto:${this.options.email}`] };
    await client.createAccount({ termsOfServiceAgreed: true, ...contact });
    this.options.log.info({ account: client.getAccountUrl() }, 'ACME account ready');
    return client;
  }
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new Error(`cannot read the ACME CA file ${file}: ${(error as Error).message}`);
  }
}

/** Retry-After is either seconds or an HTTP date. */
function retryAfterMs(header: unknown): number | undefined {
  if (typeof header !== 'string') return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header) * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(date - Date.now(), 0);
}
