/**
 * The one interface between the route table and the data planes: routes in, status out.
 * A plane never learns where a route came from.
 */
import type { RouteTableSnapshot } from '../routes/model.js';
import type { CertificateSet } from '../tls/model.js';

export type PlaneKind = 'haproxy' | 'builtin';

export interface PlaneStatus {
  readonly kind: PlaneKind;
  /** True once the plane serves traffic. */
  readonly ready: boolean;
  /** Version of the route table the plane serves. */
  readonly version: number;
  /** The last failure to apply a table, if the latest attempt failed. */
  readonly lastError?: string;
  readonly details?: Readonly<Record<string, string | number | boolean>>;
}

/** Thrown by validate() when the plane cannot serve a candidate table; the message says why. */
export class PlaneRejection extends Error {}

export interface DataPlane {
  readonly kind: PlaneKind;
  /** Starts serving `initial` on HTTP and `certificates` on HTTPS. Resolves once the listeners accept connections. */
  start(initial: RouteTableSnapshot, certificates: CertificateSet): Promise<void>;
  /** Checks that the plane could serve `candidate`, without changing what is served. Throws PlaneRejection. */
  validate(candidate: RouteTableSnapshot): Promise<void>;
  /** Serves `snapshot` from now on, without closing client connections. */
  apply(snapshot: RouteTableSnapshot): Promise<void>;
  /** Serves `certificates` on HTTPS from now on; handshakes in flight and open connections are not disturbed. */
  applyCertificates(certificates: CertificateSet): Promise<void>;
  /** Answers GET /.well-known/acme-challenge/TOKEN on the HTTP ports with `keyAuthorization` (ACME HTTP-01). */
  setAcmeChallenge(token: string, keyAuthorization: string): Promise<void>;
  removeAcmeChallenge(token: string): Promise<void>;
  /** Re-applies the current table from scratch (the API's /reload). */
  reload(): Promise<void>;
  status(): PlaneStatus;
  /** Human-readable configuration, for the API's /config. */
  describe(): Promise<string>;
  /** Stops accepting connections and finishes in-flight requests. */
  stop(): Promise<void>;
}
