/**
 * What per-service policy costs each plane: a plain route against the same route with basic auth
 * (a plain password), a path rewrite, an added request header and a set response header, side by
 * side in one run (one process each, the same nginx backend, wrk on one thread sending the
 * credentials to every target).
 *
 *   npm run build && npx vite-node bench/policy.ts -- [--seconds 10] [--rounds 3] [--connections 50]
 */
import { compareFlowProxies } from './support.js';

const POLICY = { users: 'bench:secret-pass', reqPathSearchReplace: '^/demo/,/', addReqHeader: 'X-Env bench', setResHeader: 'X-Frame-Options DENY' };
const CREDENTIALS = ['-H', `Authorization: Basic ${Buffer.from('bench:secret-pass').toString('base64')}`];

void compareFlowProxies([
  { name: 'built-in plane, plain route', plane: 'builtin', wrk: CREDENTIALS },
  { name: 'built-in plane, auth + rewrite + 2 header rules', plane: 'builtin', route: POLICY, wrk: CREDENTIALS },
  { name: 'HAProxy plane (1 thread), plain route', plane: 'haproxy', wrk: CREDENTIALS },
  { name: 'HAProxy plane (1 thread), auth + rewrite + 2 header rules', plane: 'haproxy', route: POLICY, wrk: CREDENTIALS },
]);
