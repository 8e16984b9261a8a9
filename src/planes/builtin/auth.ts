/**
 * Basic auth on the built-in plane, with the users HAProxy's userlists would hold: plain
 * passwords, SHA-256/512-crypt hashes (unixcrypt) and bcrypt hashes (bcryptjs).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { verify as verifyShaCrypt } from 'unixcrypt';
import type { Credential } from '../../routes/model.js';

/** Authorization values remembered per service; past this many the memory starts again. */
const REMEMBERED = 1000;

function sameText(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

function matches(credential: Credential, password: string): boolean {
  if (!credential.hashed) return sameText(password, credential.password);
  return credential.password.startsWith('$2') ? bcrypt.compareSync(password, credential.password) : verifyShaCrypt(password, credential.password);
}

export class BasicAuthCheck {
  private readonly users: ReadonlyMap<string, Credential>;
  /**
   * Verdicts by Authorization value: a hash costs milliseconds of CPU to check, so a client
   * sending the same credentials on every request has them checked once, not every time.
   */
  private readonly verdicts = new Map<string, boolean>();

  constructor(credentials: readonly Credential[]) {
    this.users = new Map(credentials.map((c) => [c.user, c]));
  }

  allows(authorization: string | undefined): boolean {
    if (authorization === undefined || !/^basic /i.test(authorization)) return false;
    const known = this.verdicts.get(authorization);
    if (known !== undefined) return known;
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const credential = colon > 0 ? this.users.get(decoded.slice(0, colon)) : undefined;
    const verdict = credential !== undefined && matches(credential, decoded.slice(colon + 1));
    if (this.verdicts.size >= REMEMBERED) this.verdicts.clear();
    this.verdicts.set(authorization, verdict);
    return verdict;
  }
}
