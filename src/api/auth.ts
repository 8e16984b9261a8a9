/**
 * Optional protection of the control API: a bearer token and/or basic credentials. Ping and
 * status stay open so orchestrators can health-check the proxy without secrets.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export interface ApiCredentials {
  readonly token: string | undefined;
  readonly basic: { readonly user: string; readonly pass: string } | undefined;
}

const OPEN_PATHS = new Set(['/v1/docker-flow-proxy/ping', '/v1/docker-flow-proxy/status']);

/** Compares digests so neither the length nor the content of the secret leaks through timing. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

export function authorized(header: string | undefined, credentials: ApiCredentials): boolean {
  if (header === undefined) return false;
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer' && credentials.token !== undefined) return sameSecret(value, credentials.token);
  if (scheme === 'basic' && credentials.basic !== undefined) {
    const expected = `${credentials.basic.user}:${credentials.basic.pass}`;
    return sameSecret(Buffer.from(value, 'base64').toString('utf8'), expected);
  }
  return false;
}

export function authHook(credentials: ApiCredentials) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (credentials.token === undefined && credentials.basic === undefined) return;
    if (OPEN_PATHS.has(request.url.split('?')[0] ?? '')) return;
    if (authorized(request.headers.authorization, credentials)) return;
    const schemes = [credentials.token === undefined ? '' : 'Bearer', credentials.basic === undefined ? '' : 'Basic realm="flow-proxy"'];
    await reply
      .code(401)
      // One header per scheme: browsers do not parse several challenges in one header reliably.
      .header('www-authenticate', schemes.filter(Boolean))
      .send({
        Status: 'NOK',
        Message:
          request.headers.authorization === undefined
            ? 'this endpoint needs credentials: send Authorization: Bearer <API_TOKEN> (or basic auth with API_USER/API_PASS)'
            : 'the credentials sent are not valid for this proxy',
      });
  };
}
