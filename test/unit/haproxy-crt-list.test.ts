import { describe, expect, test } from 'vitest';
import { crtListText, renderCrtList } from '../../src/planes/haproxy/certificates.js';
import type { Certificate, CertificateSet } from '../../src/tls/model.js';
import { parseBundle } from '../../src/tls/pem.js';
import { daysFromNow, makeCertificate } from '../support/certs.js';

async function certificate(name: string, names: string[], expiresInDays = 30): Promise<Certificate> {
  return parseBundle(name, 'api', (await makeCertificate(names, { notAfter: daysFromNow(expiresInDays) })).bundle);
}

function setOf(...certificates: Certificate[]): CertificateSet {
  const byName = new Map(certificates.map((c) => [c.name, c]));
  return { version: 1, certificates: byName, defaultCertificate: byName.get('default') as Certificate };
}

describe('renderCrtList', () => {
  test('the default comes first; every SNI name is written for exactly one certificate', async () => {
    const set = setOf(
      await certificate('default', ['shop.test'], 10),
      await certificate('shop', ['shop.test', 'www.shop.test'], 60),
      await certificate('wild', ['*.shop.test']),
      await certificate('old-shop', ['shop.test'], 20),
    );
    const text = crtListText(renderCrtList(set, new Map(), '/cfg/certs'));
    // The default wins no name (shop expires last), so it gets one no client asks for rather than
    // none, which would let HAProxy take its own names; old-shop wins nothing and is left out.
    expect(text).toBe(
      ['/cfg/certs/default.pem default.flow-proxy.invalid', '/cfg/certs/shop.pem shop.test www.shop.test', '/cfg/certs/wild.pem *.shop.test', ''].join('\n'),
    );
  });

  test('a serviceCert pin moves a domain to the named certificate', async () => {
    const set = setOf(await certificate('default', ['default.test']), await certificate('a', ['a.test', 'b.test']), await certificate('b', ['b.test'], 5));
    const lines = crtListText(renderCrtList(set, new Map([['b.test', 'b']]), '/c')).split('\n');
    expect(lines).toEqual(['/c/default.pem default.test', '/c/a.pem a.test', '/c/b.pem b.test', '']);
  });
});
