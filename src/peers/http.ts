/**
 * What replicas ask each other, on the control API:
 *
 * - GET /v1/flow-proxy/replication: what this replica holds (replication.ts). The answer carries
 *   the parameters of every route sent by hand (basic-auth passwords included) and the private
 *   keys of certificates;
 * - PUT and DELETE /v1/flow-proxy/acme-challenge?token=T (body: the key authorization): the
 *   replica that orders a certificate makes every replica answer its HTTP-01 challenge, since
 *   the ACME server's validation request may reach any of them. Whoever can set a challenge can
 *   get a certificate issued for the proxy's domains.
 *
 * So both are for authenticated callers only: the API's credentials when the API has some (its
 * auth hook runs first), otherwise only the addresses of the proxy's own replicas
 * (tasks.SERVICE_NAME).
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiCredentials } from '../api/auth.js';
import type { DataPlane } from '../planes/plane.js';
import type { Peers } from './peers.js';
import { REPLICATION_PATH } from './replication.js';
import type { Replication } from './replication.js';

export const ACME_CHALLENGE_PATH = '/v1/flow-proxy/acme-challenge';

export function replicationRoutes(replication: Replication, peers: Peers, plane: Pick<DataPlane, 'setAcmeChallenge' | 'removeAcmeChallenge'>, credentials: ApiCredentials): FastifyPluginCallback {
  const open = credentials.token === undefined && credentials.basic === undefined;
  const onlyReplicas = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!open) return;
    const caller = request.ip.replace(/^::ffff:/, '');
    // A replica that just started is not in the last lookup yet: look again before refusing.
    if (peers.isPeer(caller) || (await peers.find('to check a caller')).includes(caller)) return;
    await reply.code(403).send({
      Status: 'NOK',
      Message: `${request.url.split('?')[0]} answers only the proxy's own replicas (tasks.${peers.options.serviceName}) when the API has no credentials; set API_TOKEN (or API_USER/API_PASS) to call it from elsewhere`,
    });
  };
  const token = (request: FastifyRequest): string => {
    const value = (request.query as Record<string, unknown>).token;
    return typeof value === 'string' ? value : '';
  };
  const refused = (reply: FastifyReply, error: unknown) => reply.code(400).send({ Status: 'NOK', Message: (error as Error).message });

  return (app, _options, done) => {
    app.get(REPLICATION_PATH, { preHandler: onlyReplicas }, async (request, reply) => {
      const state = replication.state();
      const etag = `"${state.Digest}"`;
      if (request.headers['if-none-match'] === etag) return reply.code(304).header('etag', etag).send();
      return reply.header('etag', etag).send(state);
    });
    app.put(ACME_CHALLENGE_PATH, { preHandler: onlyReplicas, bodyLimit: 1024 }, async (request, reply) => {
      try {
        await plane.setAcmeChallenge(token(request), typeof request.body === 'string' ? request.body : '');
      } catch (error) {
        return refused(reply, error);
      }
      return reply.send({ Status: 'OK', Message: '' });
    });
    app.delete(ACME_CHALLENGE_PATH, { preHandler: onlyReplicas }, async (request, reply) => {
      await plane.removeAcmeChallenge(token(request));
      return reply.send({ Status: 'OK', Message: '' });
    });
    done();
  };
}
