/**
 * Per-service HTTP policy (issue 10), the same cases on both planes through the real API:
 * header edits on both sides as the backend and the client see them, methods refused with 403,
 * denyHttp, and refusal of values that would carry HAProxy logic.
 */
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import https from 'node:https';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import bcrypt from 'bcryptjs';
import { encrypt as encryptShaCrypt } from 'unixcrypt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { echoHandler, startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { request } from '../support/http-client.js';
import { startTestProxy, tempDir } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

function httpsGet(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

/** Request options carrying basic-auth credentials. */
function as(user: string, password: string) {
  return { headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } };
}

export function defineHttpPolicySuite(plane: PlaneKind): void {
  describe(`per-service HTTP policy: ${plane} plane`, () => {
    let proxy: TestProxy;
    let backend: Backend;

    const reconfigure = async (params: Record<string, string>) => {
      const reply = await proxy.api('reconfigure', { port: String(backend.port), outboundHostname: '127.0.0.1', ...params });
      expect(reply.status, reply.text).toBe(200);
    };

    beforeAll(async () => {
      backend = await startBackend('policy', {
        handler: (req, res, name) => {
          res.setHeader('x-powered-by', 'backend-framework');
          res.setHeader('x-res-set', 'from-backend');
          echoHandler(req, res, name);
        },
      });
      proxy = await startTestProxy({ plane, dnsServer: undefined });
    });

    afterAll(async () => {
      await proxy?.stop();
      await backend?.close();
    });

    test('request headers are deleted, set and added before the backend sees them', async () => {
      await reconfigure({
        serviceName: 'req-headers',
        servicePath: '/req-headers',
        addReqHeader: 'X-Added one,X-Added two',
        setReqHeader: 'X-Set fixed value 100%,X-Forwarded-Proto https',
        delReqHeader: 'X-Remove,User-Agent',
      });
      const response = await request(proxy.httpUrl, '/req-headers/x', { headers: { 'x-set': 'from-client', 'x-remove': 'secret', 'user-agent': 'curl', 'x-kept': 'yes' } });
      expect(response.status).toBe(200);
      const seen = response.json<BackendReply>().headers;
      expect(seen['x-added']).toBe('one, two');
      expect(seen['x-set']).toBe('fixed value 100%');
      expect(seen['x-forwarded-proto']).toBe('https');
      expect(seen['x-remove']).toBeUndefined();
      expect(seen['user-agent']).toBeUndefined();
      expect(seen['x-kept']).toBe('yes');
    });

    test('response headers are deleted, set and added before the client sees them', async () => {
      await reconfigure({
        serviceName: 'res-headers',
        servicePath: '/res-headers',
        addResHeader: 'X-Frame-Options DENY',
        setResHeader: 'X-Res-Set from-proxy',
        delResHeader: 'X-Powered-By',
      });
      const response = await request(proxy.httpUrl, '/res-headers/x');
      expect(response.status).toBe(200);
      expect(response.headers['x-frame-options']).toBe('DENY');
      expect(response.headers['x-res-set']).toBe('from-proxy');
      expect(response.headers['x-powered-by']).toBeUndefined();
      // Another service is untouched by these rules.
      await reconfigure({ serviceName: 'plain', servicePath: '/plain' });
      const plain = await request(proxy.httpUrl, '/plain/x');
      expect(plain.headers['x-powered-by']).toBe('backend-framework');
      expect(plain.headers['x-frame-options']).toBeUndefined();
    });

    test('paths are rewritten before the backend sees them (reqPathSearchReplace, reqPathSearch/Replace)', async () => {
      await reconfigure({ serviceName: 'rewritten', servicePath: '/rewrite', reqPathSearchReplace: '^/rewrite/old,/new:/v1,/v2' });
      await reconfigure({ serviceName: 'stripped', servicePath: '/strip', reqPathSearch: '^/strip', reqPathReplace: '' });
      const seen = async (path: string) => (await request(proxy.httpUrl, path)).json<BackendReply>().url;
      expect(await seen('/rewrite/old/v1/x?q=/old')).toBe('/new/v2/x?q=/old');
      expect(await seen('/rewrite/other')).toBe('/rewrite/other');
      expect(await seen('/strip/a/b?x=1')).toBe('/a/b?x=1');
      expect(await seen('/strip')).toBe('/');
    });

    test('responses are compressed with gzip or deflate when the client accepts it and the type is listed', async () => {
      await reconfigure({ serviceName: 'zipped', servicePath: '/zipped', compressionAlgo: 'gzip deflate', compressionType: 'application/json text/html' });
      await reconfigure({ serviceName: 'html-only', servicePath: '/html-only', compressionAlgo: 'gzip', compressionType: 'text/html' });
      const gzipped = await request(proxy.httpUrl, '/zipped/x', { headers: { 'accept-encoding': 'gzip' } });
      expect(gzipped.status).toBe(200);
      expect(gzipped.headers['content-encoding']).toBe('gzip');
      expect(gzipped.headers.vary).toMatch(/accept-encoding/i);
      expect(JSON.parse(gunzipSync(gzipped.body).toString('utf8')).url).toBe('/zipped/x');
      const deflated = await request(proxy.httpUrl, '/zipped/y', { headers: { 'accept-encoding': 'deflate' } });
      expect(deflated.headers['content-encoding']).toBe('deflate');
      expect(JSON.parse(inflateSync(deflated.body).toString('utf8')).url).toBe('/zipped/y');
      const plain = await request(proxy.httpUrl, '/zipped/z');
      expect(plain.headers['content-encoding']).toBeUndefined();
      expect(plain.json<BackendReply>().url).toBe('/zipped/z');
      const refused = await request(proxy.httpUrl, '/zipped/z', { headers: { 'accept-encoding': 'gzip;q=0' } });
      expect(refused.headers['content-encoding']).toBeUndefined();
      const unlisted = await request(proxy.httpUrl, '/html-only/x', { headers: { 'accept-encoding': 'gzip' } });
      expect(unlisted.headers['content-encoding']).toBeUndefined();
      expect(unlisted.json<BackendReply>().url).toBe('/html-only/x');
    });

    test('brotli: compressed on the built-in plane, refused with 400 by the HAProxy plane (HAProxy 2.6 has no brotli)', async () => {
      const reply = await proxy.api('reconfigure', { serviceName: 'brotli', servicePath: '/brotli', port: String(backend.port), outboundHostname: '127.0.0.1', compressionAlgo: 'br gzip' });
      if (plane === 'haproxy') {
        expect(reply.status).toBe(400);
        expect(reply.text).toContain('brotli');
        expect((await request(proxy.httpUrl, '/brotli/x')).status).toBe(404);
        return;
      }
      expect(reply.status, reply.text).toBe(200);
      const squeezed = await request(proxy.httpUrl, '/brotli/x', { headers: { 'accept-encoding': 'gzip, br' } });
      expect(squeezed.headers['content-encoding']).toBe('br');
      expect(JSON.parse(brotliDecompressSync(squeezed.body).toString('utf8')).url).toBe('/brotli/x');
      expect((await request(proxy.httpUrl, '/brotli/y', { headers: { 'accept-encoding': 'gzip' } })).headers['content-encoding']).toBe('gzip');
      expect((await request(proxy.httpUrl, '/brotli/z')).headers['content-encoding']).toBeUndefined();
    });

    test('allowedMethods and deniedMethods answer 403 to the other methods', async () => {
      await reconfigure({ serviceName: 'read-only', servicePath: '/read-only', allowedMethods: 'GET,HEAD' });
      await reconfigure({ serviceName: 'no-delete', servicePath: '/no-delete', deniedMethods: 'DELETE,PUT' });
      expect((await request(proxy.httpUrl, '/read-only/x')).status).toBe(200);
      expect((await request(proxy.httpUrl, '/read-only/x', { method: 'POST', body: 'x' })).status).toBe(403);
      expect((await request(proxy.httpUrl, '/read-only/x', { method: 'DELETE' })).status).toBe(403);
      expect((await request(proxy.httpUrl, '/no-delete/x', { method: 'POST', body: 'x' })).status).toBe(200);
      expect((await request(proxy.httpUrl, '/no-delete/x', { method: 'DELETE' })).status).toBe(403);
      expect((await request(proxy.httpUrl, '/no-delete/x', { method: 'PUT', body: 'x' })).status).toBe(403);
    });

    test('denyHttp answers 403 over HTTP and serves HTTPS', async () => {
      await reconfigure({ serviceName: 'tls-only', servicePath: '/tls-only', denyHttp: 'true' });
      expect((await request(proxy.httpUrl, '/tls-only/x')).status).toBe(403);
      expect(await httpsGet(proxy.settings.httpsPort, '/tls-only/x')).toBe(200);
    });

    test('redirectWhenHttpProto sends to HTTPS the requests a load balancer in front says came over plain HTTP', async () => {
      await reconfigure({ serviceName: 'behind-lb', servicePath: '/behind-lb', redirectWhenHttpProto: 'true' });
      const fromHttp = await request(proxy.httpUrl, '/behind-lb/x?q=1', { host: 'shop.example.com', headers: { 'x-forwarded-proto': 'http' } });
      expect(fromHttp.status).toBe(302);
      expect(fromHttp.headers.location).toBe('https://shop.example.com/behind-lb/x?q=1');
      expect((await request(proxy.httpUrl, '/behind-lb/x', { headers: { 'x-forwarded-proto': 'https' } })).status).toBe(200);
      // Without the header the request came straight to the proxy: not the balancer's to decide.
      expect((await request(proxy.httpUrl, '/behind-lb/x')).status).toBe(200);
      expect(await httpsGet(proxy.settings.httpsPort, '/behind-lb/x')).toBe(200);
      await reconfigure({ serviceName: 'behind-lb', servicePath: '/behind-lb', redirectWhenHttpProto: 'true', httpsRedirectCode: '301' });
      expect((await request(proxy.httpUrl, '/behind-lb/x', { host: 'shop.example.com', headers: { 'x-forwarded-proto': 'HTTP' } })).status).toBe(301);
    });

    test('basic auth per service: missing, wrong and right credentials, plain and hashed', async () => {
      const sha512 = encryptShaCrypt('hashed-six', '$6$saltsalt');
      const bcryptHash = bcrypt.hashSync('hashed-bee', 4);
      await reconfigure({ serviceName: 'private', servicePath: '/private', users: 'alice:p a%ss,bob:second' });
      await reconfigure({ serviceName: 'hashed', servicePath: '/hashed', users: `six:${sha512},bee:${bcryptHash}`, usersPassEncrypted: 'true' });
      const missing = await request(proxy.httpUrl, '/private/x');
      expect(missing.status).toBe(401);
      expect(missing.headers['www-authenticate']).toBe('Basic realm="Flow Proxy"');
      expect((await request(proxy.httpUrl, '/private/x', as('alice', 'wrong'))).status).toBe(401);
      expect((await request(proxy.httpUrl, '/private/x', as('mallory', 'p a%ss'))).status).toBe(401);
      const admitted = await request(proxy.httpUrl, '/private/x', as('alice', 'p a%ss'));
      expect(admitted.status).toBe(200);
      // The proxy's credentials stay with the proxy.
      expect(admitted.json<BackendReply>().headers.authorization).toBeUndefined();
      expect((await request(proxy.httpUrl, '/private/x', as('bob', 'second'))).status).toBe(200);
      expect((await request(proxy.httpUrl, '/hashed/x', as('six', 'hashed-six'))).status).toBe(200);
      expect((await request(proxy.httpUrl, '/hashed/x', as('bee', 'hashed-bee'))).status).toBe(200);
      expect((await request(proxy.httpUrl, '/hashed/x', as('six', 'hashed-bee'))).status).toBe(401);
      expect((await request(proxy.httpUrl, '/hashed/x', as('bee', sha512))).status).toBe(401);
      // Passwords and hashes are not shown by /config.
      const config = (await proxy.api('config')).text + (await proxy.api('config', { type: 'json' })).text;
      for (const secret of ['p a%ss', 'second', sha512, bcryptHash]) expect(config).not.toContain(secret);
    });

    test('global USERS protect every service but those with users (or usersSecret) of their own or ignoreAuthorization; COMPRESSION_ALGO applies to all', async () => {
      const secrets = await tempDir('secrets');
      await writeFile(path.join(secrets, 'dfp_users_admins'), 'dave:secret-d\nerin:secret-e\n');
      const guarded = await startTestProxy({ plane, dnsServer: undefined, env: { USERS: 'admin:global-pass', COMPRESSION_ALGO: 'gzip' }, extraArgs: ['--secrets-dir', secrets] });
      try {
        const add = async (params: Record<string, string>) => {
          const reply = await guarded.api('reconfigure', { port: String(backend.port), outboundHostname: '127.0.0.1', ...params });
          expect(reply.status, reply.text).toBe(200);
        };
        await add({ serviceName: 'guarded', servicePath: '/guarded' });
        await add({ serviceName: 'public', servicePath: '/public', ignoreAuthorization: 'true' });
        await add({ serviceName: 'own', servicePath: '/own', users: 'carol:own-pass' });
        expect((await request(guarded.httpUrl, '/guarded/x')).status).toBe(401);
        expect((await request(guarded.httpUrl, '/guarded/x', as('admin', 'global-pass'))).status).toBe(200);
        expect((await request(guarded.httpUrl, '/public/x')).status).toBe(200);
        const zipped = await request(guarded.httpUrl, '/public/x', { headers: { 'accept-encoding': 'gzip' } });
        expect(zipped.headers['content-encoding']).toBe('gzip');
        expect(JSON.parse(gunzipSync(zipped.body).toString('utf8')).url).toBe('/public/x');
        expect((await request(guarded.httpUrl, '/own/x', as('admin', 'global-pass'))).status).toBe(401);
        expect((await request(guarded.httpUrl, '/own/x', as('carol', 'own-pass'))).status).toBe(200);
        // usersSecret: the users of the Docker secret dfp_users_NAME.
        await add({ serviceName: 'secret', servicePath: '/secret', usersSecret: 'admins' });
        expect((await request(guarded.httpUrl, '/secret/x', as('dave', 'secret-d'))).status).toBe(200);
        expect((await request(guarded.httpUrl, '/secret/x', as('erin', 'secret-e'))).status).toBe(200);
        expect((await request(guarded.httpUrl, '/secret/x', as('admin', 'global-pass'))).status).toBe(401);
        const missing = await guarded.api('reconfigure', { serviceName: 'nosecret', servicePath: '/nosecret', port: String(backend.port), usersSecret: 'missing' });
        expect(missing.status).toBe(400);
        expect(missing.text).toContain('dfp_users_missing');
      } finally {
        await guarded.stop();
      }
    });

    /** The service a request reached: each test's services tag requests with X-Via. */
    const via = async (path: string, options: Parameters<typeof request>[2] = {}) => {
      const response = await request(proxy.httpUrl, path, options);
      return response.status === 200 ? (response.json<BackendReply>().headers['x-via'] ?? 'untagged') : response.status;
    };
    const tagged = (name: string, params: Record<string, string>) => reconfigure({ serviceName: name, addReqHeader: `X-Via ${name}`, ...params });

    test('servicePathExclude gives the excluded paths way to the other routes', async () => {
      await tagged('ex-main', { servicePath: '/ex', servicePathExclude: '/ex/private,/ex/health' });
      await tagged('ex-private', { servicePath: '/ex/private' });
      expect(await via('/ex/page')).toBe('ex-main');
      expect(await via('/ex/private/file')).toBe('ex-private');
      // Excluded and routed nowhere else: the answer for no route.
      expect(await via('/ex/health')).toBe(404);
    });

    test('serviceHeader sends requests carrying the header values to their own service', async () => {
      await tagged('hdr-v1', { servicePath: '/hdr' });
      await tagged('hdr-v2', { servicePath: '/hdr', serviceHeader: 'X-Version:2,X-Tenant:acme' });
      expect(await via('/hdr/x', { headers: { 'x-version': '2', 'x-tenant': 'acme' } })).toBe('hdr-v2');
      // Every header must match, one of a list's values is enough.
      expect(await via('/hdr/x', { headers: { 'x-version': '1, 2', 'x-tenant': 'acme' } })).toBe('hdr-v2');
      expect(await via('/hdr/x', { headers: { 'x-version': '2' } })).toBe('hdr-v1');
      expect(await via('/hdr/x', { headers: { 'x-version': '3', 'x-tenant': 'acme' } })).toBe('hdr-v1');
      expect(await via('/hdr/x')).toBe('hdr-v1');
      // A value may start with '-' (HAProxy would read it as an option unless told otherwise).
      await tagged('dash-hdr', { servicePath: '/dash-hdr', serviceHeader: 'X-Flag:-on', userAgent: '-bot' });
      expect(await via('/dash-hdr/x', { headers: { 'x-flag': '-on', 'user-agent': 'my-bot/1' } })).toBe('dash-hdr');
      expect(await via('/dash-hdr/x', { headers: { 'x-flag': 'on', 'user-agent': 'my-bot/1' } })).toBe(404);
    });

    test('userAgent matches part of the User-Agent, whatever its case', async () => {
      await tagged('ua-desktop', { servicePath: '/ua' });
      await tagged('ua-mobile', { servicePath: '/ua', userAgent: 'Mobile,Android' });
      expect(await via('/ua/x', { headers: { 'user-agent': 'Mozilla/5.0 (Linux; ANDROID 14; Pixel 8)' } })).toBe('ua-mobile');
      expect(await via('/ua/x', { headers: { 'user-agent': 'Mozilla/5.0 (iPhone) Mobile/15E148' } })).toBe('ua-mobile');
      expect(await via('/ua/x', { headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64)' } })).toBe('ua-desktop');
      expect(await via('/ua/x')).toBe('ua-desktop');
    });

    test('serviceDomainAlgo compares serviceDomain with the host by prefix, suffix or whole labels', async () => {
      await tagged('algo-beg', { servicePath: '/algo', serviceDomain: 'beta', serviceDomainAlgo: 'hdr_beg(host)' });
      await tagged('algo-dom', { servicePath: '/algo', serviceDomain: 'shop.test', serviceDomainAlgo: 'hdr_dom(host)' });
      await tagged('algo-end', { servicePath: '/algo', serviceDomain: 'example.org', serviceDomainAlgo: 'hdr_end(host)' });
      expect(await via('/algo/x', { host: 'beta.example.com' })).toBe('algo-beg');
      expect(await via('/algo/x', { host: 'www.shop.test:8080' })).toBe('algo-dom');
      expect(await via('/algo/x', { host: 'eu.shop.test.example.net' })).toBe('algo-dom');
      expect(await via('/algo/x', { host: 'workshop.test' })).toBe(404);
      expect(await via('/algo/x', { host: 'api.example.org' })).toBe('algo-end');
      expect(await via('/algo/x', { host: 'alpha.example.com' })).toBe(404);
    });

    test('isDefaultBackend gets every request nothing else matches, one service at a time', async () => {
      await tagged('anchor', { servicePath: '/anchor' });
      expect(await via('/nowhere/x')).toBe(404);
      await tagged('fallback', { servicePath: '/fallback', isDefaultBackend: 'true' });
      expect(await via('/nowhere/x')).toBe('fallback');
      expect(await via('/anchor/x')).toBe('anchor');
      const second = await proxy.api('reconfigure', { serviceName: 'fallback2', servicePath: '/fallback2', port: String(backend.port), isDefaultBackend: 'true' });
      expect(second.status).toBe(409);
      expect(second.text).toContain('fallback');
      expect((await proxy.api('remove', { serviceName: 'fallback' })).status).toBe(200);
      expect(await via('/fallback/x')).toBe(404);
      expect(await via('/nowhere/x')).toBe(404);
    });

    test('allowedIps and deniedIps answer 403 to clients outside or inside their ranges', async () => {
      await tagged('ip-allowed', { servicePath: '/ip-allowed', allowedIps: '10.0.0.0/8,127.0.0.0/8' });
      await tagged('ip-elsewhere', { servicePath: '/ip-elsewhere', allowedIps: '10.0.0.0/8,2001:db8::/32' });
      await tagged('ip-denied', { servicePath: '/ip-denied', deniedIps: '127.0.0.1' });
      expect(await via('/ip-allowed/x')).toBe('ip-allowed');
      expect(await via('/ip-elsewhere/x')).toBe(403);
      expect(await via('/ip-denied/x')).toBe(403);
      // X-Forwarded-For is not believed when no proxy is trusted.
      expect(await via('/ip-elsewhere/x', { headers: { 'x-forwarded-for': '10.1.2.3' } })).toBe(403);
    });

    test('aclName orders routes with conditions that match alike; older names and bookkeeping parameters work', async () => {
      await tagged('order-a', { servicePath: '/order', serviceHeader: 'X-Order:1' });
      await tagged('order-b', { servicePath: '/order', serviceHeader: 'X-Other:1' });
      const both = { headers: { 'x-order': '1', 'x-other': '1' } };
      expect(await via('/order/x', both)).toBe('order-a');
      await tagged('order-b', { servicePath: '/order', serviceHeader: 'X-Other:1', aclName: '00-first' });
      expect(await via('/order/x', both)).toBe('order-b');
      // serviceDomainMatchAll=true is the older hdr_dom(host); addHeader the older addReqHeader; userDef is free text.
      await reconfigure({ serviceName: 'older', servicePath: '/older', serviceDomain: 'older.test', serviceDomainMatchAll: 'true', addHeader: 'X-Via older', userDef: 'anything at all', xForwardedProto: 'true', discoveryType: 'Overlay' });
      expect(await via('/older/x', { host: 'www.older.test' })).toBe('older');
    });

    test('connectionMode closes the replicas\' connection after each response, or the client\'s too', async () => {
      await tagged('server-close', { servicePath: '/server-close', connectionMode: 'http-server-close' });
      await tagged('both-close', { servicePath: '/both-close', connectionMode: 'httpclose' });
      await tagged('keep', { servicePath: '/keep', connectionMode: 'http-keep-alive' });
      /** Backend connections that served three requests sent one after another on one client connection. */
      const connectionsFor = async (path: string) => {
        const sockets = new Set<object>();
        const seen = (req: http.IncomingMessage) => sockets.add(req.socket);
        backend.server.on('request', seen);
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
          for (let i = 0; i < 3; i++) expect((await request(proxy.httpUrl, path, { agent })).status).toBe(200);
        } finally {
          agent.destroy();
          backend.server.off('request', seen);
        }
        return sockets.size;
      };
      expect(await connectionsFor('/server-close/x')).toBe(3);
      expect(await connectionsFor('/keep/x')).toBe(1);
      /** Answers to two requests pipelined on one client connection: 1 when the proxy closes it after the first. */
      const answersOnOneConnection = (path: string) =>
        new Promise<number>((resolve, reject) => {
          const socket = net.connect(Number(new URL(proxy.httpUrl).port), '127.0.0.1');
          let text = '';
          const count = () => text.match(/^HTTP\/1\.1 \d{3}/gm)?.length ?? 0;
          socket.setEncoding('latin1');
          socket.on('data', (chunk: string) => {
            text += chunk;
            if (count() === 2) socket.destroy();
          });
          socket.on('close', () => resolve(count()));
          socket.on('error', () => undefined);
          socket.setTimeout(10_000, () => reject(new Error(`no answer on ${path} within 10 s`)));
          const request = `GET ${path} HTTP/1.1\r\nHost: close.test\r\nConnection: keep-alive\r\n\r\n`;
          socket.write(request + request);
        });
      expect(await answersOnOneConnection('/both-close/x')).toBe(1);
      expect(await connectionsFor('/both-close/x')).toBe(3);
      expect(await answersOnOneConnection('/server-close/x')).toBe(2);
    });

    test('values that would carry HAProxy logic, break a line or ask for what a plane cannot do are refused with 400 naming the parameter', async () => {
      const cases: Record<string, string>[] = [
        { addReqHeader: 'X-Port %[dst_port]' },
        { setReqHeader: 'X-Ssl on if { ssl_fc }' },
        { addResHeader: "X-Quote it's" },
        { addResHeader: 'X-Bad\nInjected: yes' },
        { delReqHeader: 'Bad Name' },
        { addReqHeader: 'NoValue' },
        { allowedMethods: 'get' },
        { denyHttp: 'maybe' },
        { users: "alice:it's" },
        { users: 'alice' },
        { users: 'alice:a,alice:b' },
        { users: 'alice:plain', usersPassEncrypted: 'true' },
        { usersPassEncrypted: 'true' },
        { ignoreAuthorization: 'yes' },
        { reqPathSearchReplace: '(.*),/x' },
        { reqPathSearchReplace: '/only-search' },
        { reqPathSearchReplace: '/a,/b c' },
        { reqPathReplace: '/x' },
        { compressionAlgo: 'zstd' },
        { compressionType: 'text/html;x', compressionAlgo: 'gzip' },
        { compressionType: 'text/html' },
        { servicePathExclude: 'private' },
        { serviceHeader: 'X-Version' },
        { serviceHeader: "X-Version:it's" },
        { userAgent: 'Mobile"' },
        { userAgent: 'a\\b' },
        { userAgent: '}' },
        { serviceHeader: 'X-A:{x}' },
        { serviceDomainAlgo: 'hdr_reg(host)' },
        { serviceDomainAlgo: 'hdr_beg(host)' },
        { serviceDomainAlgo: 'req.ssl_sni', serviceDomain: 'x.test' },
        { isDefaultBackend: 'yes' },
        { allowedIps: '10.0.0.0/33' },
        { deniedIps: '10.0.0.1 if TRUE' },
        { 'servicePathExclude.1': '/bad/x' },
        { aclName: 'a b' },
        { discoveryType: 'DNS', addressMode: 'vip' },
        { xForwardedProto: 'false' },
        { connectionMode: 'http-tunnel' },
        { serviceColor: 'blue' },
        { addHeader: 'X-A 1', addReqHeader: 'X-A 2' },
      ];
      for (const extra of cases) {
        const reply = await proxy.api('reconfigure', { serviceName: 'bad', servicePath: '/bad', port: String(backend.port), ...extra });
        expect(reply.status, JSON.stringify(extra)).toBe(400);
        expect(reply.text).toContain(Object.keys(extra)[0]);
        // A refused password is never echoed back.
        if (extra.users?.includes(':') === true) expect(reply.text).not.toContain(extra.users.split(':')[1]);
      }
      // Nothing was configured by the refused requests.
      expect((await request(proxy.httpUrl, '/bad')).status).toBe(404);
    });
  });
}
