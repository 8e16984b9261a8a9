/**
 * ACME end to end through a real proxy on each plane: a service labelled letsencrypt=true gets a
 * certificate from a real Pebble, which validates HTTP-01 against the proxy's own HTTP port; the
 * certificate is then served by SNI. A domain Pebble cannot validate is reported in the API and
 * blocks neither the other domain nor the proxy. (Renewal and failed renewals are covered against
 * the same Pebble in acme.test.ts.)
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually } from '../support/http-client.js';
import { httpsRequest, presentedCertificate } from '../support/https-client.js';
import { startPebble } from '../support/pebble.js';
import type { Pebble } from '../support/pebble.js';
import { startTestProxy, testSettings } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

interface AcmeEntry {
  Service: string;
  Certificate: string;
  State: string;
  LastError: string;
}

for (const plane of ['builtin', 'haproxy'] as const satisfies readonly PlaneKind[]) {
  describe(`ACME: ${plane} plane`, () => {
    const dns = new TestDnsServer();
    let pebble: Pebble;
    let proxy: TestProxy;
    let backend: Backend;

    const acmeState = async () => ((await proxy.api('certs')).body as { Acme: AcmeEntry[] }).Acme;

    beforeAll(async () => {
      const dnsAddress = await dns.start();
      dns.set('shop.fp.test', ['127.0.0.1']);
      dns.set('www.shop.fp.test', ['127.0.0.1']);
      dns.set('web', ['127.0.0.1']);
      const base = await testSettings({ plane, dnsServer: dnsAddress });
      pebble = await startPebble({ dnsServer: dnsAddress, httpPort: base.httpPort });
      const settings = await testSettings({
        plane,
        dnsServer: dnsAddress,
        extraArgs: ['--http-port', String(base.httpPort)],
        env: { ACME_DIRECTORY: pebble.directoryUrl, ACME_CA_FILE: pebble.caFile, ACME_EMAIL: 'ops@fp.test' },
      });
      proxy = await startTestProxy({ plane, dnsServer: dnsAddress }, settings);
      backend = await startBackend('web');
    }, 60_000);

    afterAll(async () => {
      await proxy?.stop();
      await pebble?.stop();
      await backend?.close();
      await dns.stop();
    });

    test('a service asking for letsencrypt gets a certificate from the ACME server, served by SNI', async () => {
      // Every request is redirected to HTTPS, yet the HTTP-01 challenge is still answered.
      const reply = await proxy.api('reconfigure', {
        serviceName: 'web',
        serviceDomain: 'shop.fp.test,www.shop.fp.test',
        port: String(backend.port),
        letsencrypt: 'true',
        httpsOnly: 'true',
      });
      expect(reply.status, reply.text).toBe(200);
      const unknown = await proxy.api('reconfigure', { serviceName: 'nowhere', serviceDomain: 'unknown.fp.test', port: '1', letsencrypt: 'true' });
      expect(unknown.status).toBe(200);

      const states = await eventually(acmeState, (s) => s.find((e) => e.Service === 'web')?.State === 'valid', 40_000);
      const web = states.find((e) => e.Service === 'web');
      expect(web?.Certificate).toBe('acme-shop.fp.test');
      const failed = await eventually(acmeState, (s) => s.find((e) => e.Service === 'nowhere')?.State === 'failed', 40_000);
      expect(failed.find((e) => e.Service === 'nowhere')?.LastError).toMatch(/unknown\.fp\.test/);

      const root = new X509Certificate(await pebble.root());
      const listed = ((await proxy.api('certs')).body as { Certs: { ServiceName: string; Fingerprint256: string; CertContent: string; Source: string }[] }).Certs;
      const issued = listed.find((c) => c.ServiceName === 'acme-shop.fp.test');
      expect(issued?.Source).toBe('acme');
      // The chain leads to the root of this Pebble: leaf <- intermediate <- root.
      const [leaf, intermediate] = (issued?.CertContent.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
      expect(leaf?.checkIssued(intermediate as X509Certificate)).toBe(true);
      expect(leaf?.verify((intermediate as X509Certificate).publicKey)).toBe(true);
      expect(intermediate?.verify(root.publicKey)).toBe(true);
      for (const name of ['shop.fp.test', 'www.shop.fp.test']) {
        expect((await presentedCertificate(proxy.settings.httpsPort, name)).fingerprint256).toBe(issued?.Fingerprint256);
      }
      const response = await httpsRequest(proxy.settings.httpsPort, '/', { servername: 'shop.fp.test', host: 'shop.fp.test' });
      expect(response.json<BackendReply>().backend).toBe('web');
    }, 90_000);
  });
}
