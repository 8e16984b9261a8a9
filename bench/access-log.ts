/**
 * What access logs cost each plane: the same plane with and without `--access-log FILE`, side
 * by side in one run (one process each, the same nginx backend, wrk on one thread).
 *
 *   npm run build && npx vite-node bench/access-log.ts -- [--seconds 10] [--rounds 3] [--connections 50]
 */
import path from 'node:path';
import { tempDir } from '../test/support/proxy.js';
import { compareFlowProxies } from './support.js';

async function main(): Promise<void> {
  const logDir = await tempDir('bench-access-log');
  await compareFlowProxies([
    { name: 'built-in plane', plane: 'builtin' },
    { name: 'built-in plane, access log', plane: 'builtin', args: ['--access-log', path.join(logDir, 'builtin.log')] },
    { name: 'HAProxy plane (1 thread)', plane: 'haproxy' },
    { name: 'HAProxy plane (1 thread), access log', plane: 'haproxy', args: ['--access-log', path.join(logDir, 'haproxy.log')] },
  ]);
}

void main();
