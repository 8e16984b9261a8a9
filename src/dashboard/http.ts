/**
 * The dashboard's HTTP side on the control API: the page and its files at / and /dashboard/*,
 * a JSON page of routes, and the event stream. The API's auth hook covers all of them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyPluginCallback, FastifyReply } from 'fastify';
import type { Dashboard, EventSink } from './dashboard.js';
import { parseRouteQuery } from './routes-page.js';

/** Browser files, next to this module in src/ and copied next to it in dist/ by `npm run build`. */
export const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url));

/** Everything comes from this origin: no inline script or style, no other host, no framing. */
export const CONTENT_SECURITY_POLICY = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const FILES: readonly { readonly url: string; readonly file: string; readonly type: string }[] = [
  { url: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { url: '/dashboard/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { url: '/dashboard/app.css', file: 'app.css', type: 'text/css; charset=utf-8' },
  { url: '/dashboard/favicon.svg', file: 'favicon.svg', type: 'image/svg+xml' },
];

/** A browser that stops reading is dropped rather than buffered for without bound. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

function withSecurityHeaders(reply: FastifyReply, cacheControl: string): FastifyReply {
  return reply.headers({ ...SECURITY_HEADERS, 'cache-control': cacheControl });
}

/** A Fastify plugin: registered on the API, it inherits the API's hooks (auth) like any route. */
export function dashboardRoutes(dashboard: Dashboard, pageDir: string = PAGE_DIR): FastifyPluginCallback {
  return (app, _options, done) => {
    routes(app, dashboard, pageDir);
    done();
  };
}

function routes(app: FastifyInstance, dashboard: Dashboard, pageDir: string): void {
  for (const { url, file, type } of FILES) {
    let body: Buffer | undefined;
    let missing = '';
    try {
      body = readFileSync(path.join(pageDir, file));
    } catch (error) {
      missing = `the dashboard file ${path.join(pageDir, file)} cannot be read (${(error as Error).message}); build with npm run build, which copies src/dashboard/page to dist/dashboard/page`;
    }
    app.get(url, async (_request, reply) => {
      if (body === undefined) return withSecurityHeaders(reply, 'no-store').code(500).send({ Status: 'NOK', Message: missing });
      return withSecurityHeaders(reply, 'no-cache').type(type).send(body);
    });
  }

  app.get('/dashboard/routes', async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const stream = typeof query.stream === 'string' ? query.stream : undefined;
    return withSecurityHeaders(reply, 'no-store').send(dashboard.routes(parseRouteQuery(query), stream));
  });

  app.get('/dashboard/events', (_request, reply) => {
    reply.hijack();
    const response = reply.raw;
    response.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
    response.write('retry: 2000\n\n');
    const sink: EventSink = {
      send(event: string, data: unknown) {
        if (response.writableLength > MAX_BUFFERED_BYTES) {
          response.destroy();
          return;
        }
        // JSON.stringify escapes line breaks, so the data is one SSE line.
        response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      },
      end: () => response.end(),
    };
    const id = dashboard.open(sink);
    response.on('close', () => dashboard.close(id));
  });
}
