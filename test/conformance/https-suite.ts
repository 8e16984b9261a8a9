/**
 * HTTPS conformance, run against each data plane through the real API with real TLS clients:
 * SNI selection, certificates through the API, bad bundles refused with serving unchanged,
 * redirects, HTTP/2 by ALPN, X-Forwarded-* over TLS, TLS to replicas, and a certificate
 * replaced under load without a failed request (and, on HAProxy, without a reload).
 */
import https from 'node:https';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { daysFromNow, makeCertificate } from '../support/certs.js';
import type { TestCertificate } from '../support/certs.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { http2Request, httpsRequest, presentedCertificate } from '../support/https-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

export function defineHttpsSuite(plane: PlaneKind): void {
  describe(`https: ${plane} plane`, () => {
    const dns = new TestDnsServer();
    const backends: Backend[] = [];
    let proxy: TestProxy;
    let httpsPort: number;
    let certA: TestCertificate;
    let certB: TestCertificate;
    let certWild: TestCertificate;
    let generatedDefault: string;

    const putCert = async (name: string, body: string) => {
      const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/cert?certName=${encodeURIComponent(name)}`, { method: 'PUT', body });
      return { status: response.status, body: (await response.json()) as { Status: string; Message: string } };
    };
    const served = async (servername: string | undefined) => (await presentedCertificate(httpsPort, servername)).fingerprint256;
    const reconfigure = async (params: Record<string, string>) => {
      const reply = await proxy.api('reconfigure', params);
      expect(reply.status, reply.text).toBe(200);
    };

    beforeAll(async () => {
      const dnsAddress = await dns.start();
      proxy = await startTestProxy({ plane, dnsServer: dnsAddress, env: { TIMEOUT_HTTP_REQUEST: '2', TIMEOUT_CLIENT: '3' } });
      httpsPort = proxy.settings.httpsPort;
      generatedDefault = await served(undefined);
      [certA, certB, certWild] = await Promise.all([
        makeCertificate(['a.test']),
        makeCertificate(['b.test', 'www.b.test']),
        makeCertificate(['*.wild.test']),
      ]);
      for (const [name, cert] of [['a', certA], ['b', certB], ['wild', certWild]] as const) {
        const reply = await putCert(name, cert.bundle);
        expect(reply.status, reply.body.Message).toBe(200);
      }
      const backend = await startBackend('web');
      backends.push(backend);
      dns.set('web', ['127.0.0.1']);
      await reconfigure({ serviceName: 'web', servicePath: '/', port: String(backend.port) });
      await eventually(() => httpsRequest(httpsPort, '/', { servername: 'a.test' }), (r) => r.status === 200, 10_000);
    });

    afterAll(async () => {
      await proxy?.stop();
      await Promise.all(backends.map((b) => b.close()));
      await dns.stop();
    });

    test('SNI picks the certificate by exact name, then wildcard; unknown names and no SNI get the default', async () => {
      expect(await served('a.test')).toBe(certA.fingerprint256);
      expect(await served('b.test')).toBe(certB.fingerprint256);
      expect(await served('WWW.B.TEST')).toBe(certB.fingerprint256);
      expect(await served('x.wild.test')).toBe(certWild.fingerprint256);
      expect(await served('y.x.wild.test')).toBe(generatedDefault);
      expect(await served('unknown.test')).toBe(generatedDefault);
      expect(await served(undefined)).toBe(generatedDefault);
      expect(generatedDefault).not.toBe(certA.fingerprint256);
    });

    test('only TLS 1.2 and 1.3 are offered, and ALPN offers h2', async () => {
      const handshake = await presentedCertificate(httpsPort, 'a.test');
      expect(['TLSv1.2', 'TLSv1.3']).toContain(handshake.protocol);
      expect(handshake.alpn).toBe('h2');
      await expect(
        new Promise((resolve, reject) => {
          const req = https.request({ host: '127.0.0.1', port: httpsPort, rejectUnauthorized: false, maxVersion: 'TLSv1.1', minVersion: 'TLSv1', agent: false }, resolve);
          req.on('error', reject);
          req.end();
        }),
      ).rejects.toThrow();
    });

    // HAProxy 2.6 bounds a handshake by TIMEOUT_CLIENT (its timeout client-hs came in 2.8); the
    // built-in plane by TIMEOUT_HTTP_REQUEST, as a request head.
    test('a client that never completes its TLS handshake is cut off', async () => {
      const started = Date.now();
      const socket = net.connect(httpsPort, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.resume();
      socket.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a TLS record, then nothing
      const closedAfterMs = await new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
      expect(closedAfterMs).toBeGreaterThan(1500);
      expect(closedAfterMs).toBeLessThan(6000);
    }, 15_000);

    test('the API lists certificates without private keys', async () => {
      const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/certs`);
      const text = await response.text();
      expect(response.status).toBe(200);
      expect(text).not.toMatch(/PRIVATE KEY/);
      const body = JSON.parse(text) as { Status: string; Certs: { ServiceName: string; CertContent: string; Names: string[]; Default: boolean }[] };
      expect(body.Status).toBe('OK');
      const a = body.Certs.find((c) => c.ServiceName === 'a');
      expect(a?.Names).toEqual(['a.test']);
      expect(a?.CertContent).toBe(certA.certPem);
      expect(body.Certs.filter((c) => c.Default)).toHaveLength(1);
    });

    test('bad bundles are refused with a 400 naming the problem, and serving is unchanged', async () => {
      const other = await makeCertificate(['a.test']);
      const expired = await makeCertificate(['a.test'], { notBefore: daysFromNow(-30), notAfter: daysFromNow(-1) });
      const future = await makeCertificate(['a.test'], { notBefore: daysFromNow(2), notAfter: daysFromNow(30) });
      const nameless = await makeCertificate([], { commonName: 'not a host name' });
      const cases: [string, string, RegExp][] = [
        ['garbage', 'this is not PEM', /certificate/i],
        ['no key', certA.certPem, /key/i],
        ['key of another certificate', certA.certPem + other.keyPem, /match/i],
        ['expired', expired.bundle, /expired/i],
        ['not yet valid', future.bundle, /not (yet )?valid/i],
        ['no host name', nameless.bundle, /name/i],
        ['too large', certA.bundle + '#'.repeat(70 * 1024), /large|size|bytes/i],
      ];
      for (const [label, body, message] of cases) {
        const reply = await putCert('a', body);
        expect(reply.status, label).toBe(400);
        expect(reply.body.Status, label).toBe('NOK');
        expect(reply.body.Message, label).toMatch(message);
      }
      expect((await putCert('../etc', certA.bundle)).status).toBe(400);
      expect(await served('a.test')).toBe(certA.fingerprint256);
    });

    test('a certificate is added, replaced, then removed through the API, without a reload', async () => {
      const reloadsBefore = proxy.proxy.plane.status().details?.reloads;
      const runtimeBefore = Number(proxy.proxy.plane.status().details?.certificateUpdates);
      const replacement = await makeCertificate(['c.test']);
      expect((await putCert('c', (await makeCertificate(['c.test'])).bundle)).status).toBe(200);
      expect((await putCert('c', replacement.bundle)).status).toBe(200);
      expect(await served('c.test')).toBe(replacement.fingerprint256);
      const removed = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/cert?certName=c`, { method: 'DELETE' });
      expect(removed.status).toBe(200);
      expect(await served('c.test')).toBe(generatedDefault);
      const again = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/cert?certName=c`, { method: 'DELETE' });
      expect(again.status).toBe(404);
      expect(proxy.proxy.plane.status().details?.reloads).toBe(reloadsBefore);
      // Added, replaced, removed: each through HAProxy's runtime API.
      if (plane === 'haproxy') expect(Number(proxy.proxy.plane.status().details?.certificateUpdates)).toBe(runtimeBefore + 3);
    });

    test('HTTP/2 is negotiated and served; the backend sees X-Forwarded-Proto https and the port', async () => {
      const response = await http2Request(httpsPort, '/h2?x=1', { servername: 'a.test', authority: 'a.test' });
      expect(response.status).toBe(200);
      const reply = response.json<BackendReply>();
      expect(reply.url).toBe('/h2?x=1');
      expect(reply.headers.host).toBe(`a.test:${httpsPort}`);
      expect(reply.headers['x-forwarded-proto']).toBe('https');
      expect(reply.headers['x-forwarded-port']).toBe(String(httpsPort));
      const posted = await http2Request(httpsPort, '/h2-post', { servername: 'a.test', method: 'POST', body: 'x'.repeat(10_000) });
      expect(posted.json<BackendReply>().method).toBe('POST');
      const plain = (await request(proxy.httpUrl, '/plain')).json<BackendReply>();
      expect(plain.headers['x-forwarded-proto']).toBe('http');
      expect(plain.headers['x-forwarded-port']).toBe(String(proxy.settings.httpPort));
    });

    test('httpsOnly redirects plain HTTP with the chosen code; HTTPS is served', async () => {
      const backend = await startBackend('secure');
      backends.push(backend);
      dns.set('secure', ['127.0.0.1']);
      await reconfigure({ serviceName: 'secure', serviceDomain: 'secure.test', port: String(backend.port), httpsOnly: 'true', httpsRedirectCode: '308' });
      const redirected = await eventually(() => request(proxy.httpUrl, '/x?y=1', { host: `secure.test:${proxy.settings.httpPort}` }), (r) => r.status === 308);
      expect(redirected.headers.location).toBe(`https://secure.test:${httpsPort}/x?y=1`);
      const served = await httpsRequest(httpsPort, '/x', { servername: 'secure.test', host: 'secure.test' });
      expect(served.json<BackendReply>().backend).toBe('secure');
      await reconfigure({ serviceName: 'secure', serviceDomain: 'secure.test', port: String(backend.port), httpsOnly: 'true' });
      const defaultCode = await eventually(() => request(proxy.httpUrl, '/', { host: 'secure.test' }), (r) => r.status === 302);
      expect(defaultCode.headers.location).toBe(`https://secure.test:${httpsPort}/`);
      expect((await request(proxy.httpUrl, '/', { host: 'other.test' })).status).toBe(200);
    });

    test('redirectFromDomain sends old domains to the first serviceDomain, keeping scheme, port and path', async () => {
      const backend = await startBackend('moved');
      backends.push(backend);
      dns.set('moved', ['127.0.0.1']);
      await reconfigure({ serviceName: 'moved', serviceDomain: 'new.test,alt.test', redirectFromDomain: 'old.test,older.test', port: String(backend.port) });
      const plain = await eventually(() => request(proxy.httpUrl, '/p?q=1', { host: `old.test:${proxy.settings.httpPort}` }), (r) => r.status === 301);
      expect(plain.headers.location).toBe(`http://new.test:${proxy.settings.httpPort}/p?q=1`);
      const secure = await httpsRequest(httpsPort, '/s', { host: 'older.test' });
      expect(secure.status).toBe(301);
      expect(secure.headers.location).toBe('https://new.test/s');
      expect((await request(proxy.httpUrl, '/', { host: 'new.test' })).json<BackendReply>().backend).toBe('moved');
    });

    test('httpsPort sends HTTPS requests to the replicas over TLS; sslVerifyNone accepts their own certificate', async () => {
      const cert = await makeCertificate(['tlsbackend']);
      const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ backend: 'tls-replica', encrypted: true, url: req.url }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const plainBackend = await startBackend('tlsbackend');
      backends.push(plainBackend);
      dns.set('tlsbackend', ['127.0.0.1']);
      const tlsPort = String((server.address() as { port: number }).port);
      await reconfigure({ serviceName: 'tlsbackend', servicePath: '/tb', port: String(plainBackend.port), httpsPort: tlsPort, sslVerifyNone: 'true' });
      const viaTls = await eventually(() => httpsRequest(httpsPort, '/tb/1'), (r) => r.status === 200, 10_000);
      expect(viaTls.json<{ backend: string }>().backend).toBe('tls-replica');
      expect((await request(proxy.httpUrl, '/tb/2')).json<BackendReply>().backend).toBe('tlsbackend');
      // Verified by default: a self-signed replica certificate is not trusted.
      await reconfigure({ serviceName: 'tlsbackend', servicePath: '/tb', port: String(plainBackend.port), httpsPort: tlsPort });
      const refused = await eventually(() => httpsRequest(httpsPort, '/tb/3'), (r) => r.status >= 500, 10_000);
      expect(refused.status).toBeGreaterThanOrEqual(502);
      server.closeAllConnections();
      server.close();
    });

    test('serviceCert pins a service domain to a named certificate', async () => {
      const pinned = await makeCertificate(['pinned.test', 'a.test'], { notAfter: daysFromNow(10) });
      expect((await putCert('pinned', pinned.bundle)).status).toBe(200);
      const backend = await startBackend('pin');
      backends.push(backend);
      dns.set('pin', ['127.0.0.1']);
      await reconfigure({ serviceName: 'pin', serviceDomain: 'pinned.test', port: String(backend.port), serviceCert: 'pinned' });
      expect(await eventually(() => served('pinned.test'), (f) => f === pinned.fingerprint256)).toBe(pinned.fingerprint256);
      expect(await served('a.test')).toBe(certA.fingerprint256);
    });

    test('a certificate replaced while requests flow fails none of them', async () => {
      const reloadsBefore = proxy.proxy.plane.status().details?.reloads;
      const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 4 });
      let ok = 0;
      const failures: string[] = [];
      let running = true;
      const client = async (agent: https.Agent | false) => {
        while (running) {
          try {
            const response = await httpsRequest(httpsPort, '/load', { servername: 'a.test', agent });
            if (response.status === 200) ok++;
            else failures.push(String(response.status));
          } catch (error) {
            failures.push((error as Error).message);
          }
        }
      };
      const clients = [client(keepAlive), client(keepAlive), client(false), client(false)];
      const replacements: TestCertificate[] = [];
      for (let i = 0; i < 5; i++) {
        const next = await makeCertificate(['a.test']);
        replacements.push(next);
        expect((await putCert('a', next.bundle)).status).toBe(200);
        const before = ok;
        await eventually(async () => ok, (count) => count > before + 20, 10_000);
      }
      running = false;
      await Promise.all(clients);
      keepAlive.destroy();
      expect(failures).toEqual([]);
      expect(ok).toBeGreaterThan(100);
      expect(await served('a.test')).toBe(replacements.at(-1)?.fingerprint256);
      if (plane === 'haproxy') expect(proxy.proxy.plane.status().details?.reloads).toBe(reloadsBefore);
    }, 60_000);
  });
}
