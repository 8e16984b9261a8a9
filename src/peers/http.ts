/**
 * GET /v1/flow-proxy/replication: what this replica holds, for its peers (replication.ts). The
 * answer carries the parameters of every route sent by hand (basic-auth passwords included) and
 * the private keys of certificates sent by hand, so it is served to authenticated callers only:
 * the API's credentials when the API has some (its auth hook runs first), otherwise only to the
 * addresses of the proxy's own replicas (tasks.SERVICE_NAME).
 */
import type { FastifyPluginCallback } from 'fastify';
import type { ApiCredentials } from '../api/auth.js';
import type { Peers } from './peers.js';
import { REPLICATION_PATH } from './replication.js';
import type { Replication } from './replication.js';

export function replicationRoutes(replication: Replication, peers: Peers, credentials: ApiCredentials): FastifyPluginCallback {
  const open = credentials.token === undefined && credentials.basic === undefined;
  return (app, _options, done) => {
    app.get(REPLICATION_PATH, async (request, reply) => {
      // A replica that just started is not in the last lookup yet: look again before refusing.
      if (open && !peers.isPeer(request.ip) && !(await peers.find('to check a caller')).includes(request.ip.replace(/^::ffff:/, ''))) {
        return reply.code(403).send({
          Status: 'NOK',
          Message: `${REPLICATION_PATH} answers only the proxy's own replicas (tasks.${peers.options.serviceName}) when the API has no credentials; set API_TOKEN (or API_USER/API_PASS) to read it from elsewhere`,
        });
      }
      const state = replication.state();
      const etag = `"${state.Digest}"`;
      if (request.headers['if-none-match'] === etag) return reply.code(304).header('etag', etag).send();
      return reply.header('etag', etag).send(state);
    });
    done();
  };
}
