/**
 * TCP and TLS pass-through (issue 11), the same cases on both planes with real servers: a TCP
 * echo service reached on its srcPort, idle clients closed after timeoutClient, TLS passed
 * through by server name so the client sees the replica's own certificate, and the refusals.
 */
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { makeCertificate } from '../support/certs.js';
import { eventually } from '../support/http-client.js';
import { freePort } from '../support/proxy.js';
import { proxyWithTestDns } from '../support/suite-proxy.js';

/** Sends `text` on a new connection to `port` and resolves with what comes back before `expected` bytes arrived or the connection closed. */
function echoOnce(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let got = '';
    socket.on('data', (chunk: Buffer) => {
      got += chunk.toString('utf8');
      if (got.length >= text.length) socket.end();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
  });
}

/** A TLS handshake through the proxy with `servername`; resolves with the peer certificate's subject CN and the echoed text, or undefined when the proxy closed the connection. */
function throughSni(port: number, servername: string): Promise<{ cn: string; echoed: string } | undefined> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const cn = String(socket.getPeerCertificate().subject?.CN ?? '');
      socket.write('hello over tls');
      socket.once('data', (chunk: Buffer) => {
        socket.end();
        resolve({ cn, echoed: chunk.toString('utf8') });
      });
    });
    socket.on('error', () => resolve(undefined));
    socket.on('close', () => resolve(undefined));
  });
}

export function defineStreamSuite(plane: PlaneKind): void {
  describe(`tcp and sni services: ${plane} plane`, () => {
    const servers: net.Server[] = [];
    const suite = proxyWithTestDns(plane, async () => servers.forEach((server) => server.close()));
    const { dns } = suite;

    const listen = async (server: net.Server, address: string) => {
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, address, () => resolve()));
      return (server.address() as net.AddressInfo).port;
    };

    const reconfigure = async (params: Record<string, string>, status = 200) => {
      const reply = await suite.proxy.api('reconfigure', { addressMode: 'tasks', ...params });
      expect(reply.status, reply.text).toBe(status);
      return reply.text;
    };



    test('reqMode=tcp routes its srcPort to the service (an echo server), and timeoutClient closes idle clients', async () => {
      const echoPort = await listen(net.createServer((socket) => socket.on('error', () => undefined).pipe(socket)), '127.0.0.2');
      dns.set('tasks.echo', ['127.0.0.2']);
      const srcPort = await freePort();
      await reconfigure({ serviceName: 'echo', reqMode: 'tcp', srcPort: String(srcPort), port: String(echoPort), timeoutClient: '1' });
      expect(await eventually(() => echoOnce(srcPort, 'ping over tcp\n'), (got) => got === 'ping over tcp\n', 15_000)).toBe('ping over tcp\n');

      const started = Date.now();
      const closedAfter = await new Promise<number>((resolve) => {
        const idle = net.connect(srcPort, '127.0.0.1');
        idle.on('error', () => undefined);
        idle.on('close', () => resolve(Date.now() - started));
      });
      expect(closedAfter).toBeGreaterThanOrEqual(900);
      expect(closedAfter).toBeLessThan(5000);
    }, 30_000);

    test('reqMode=sni passes TLS through by server name: the client sees the replica\'s own certificate', async () => {
      const alpha = await makeCertificate(['alpha.sni.test'], { commonName: 'alpha.sni.test' });
      const beta = await makeCertificate(['*.beta.test'], { commonName: 'beta wildcard' });
      const tlsEcho = (cert: { certPem: string; keyPem: string }) =>
        tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (socket) => socket.on('error', () => undefined).pipe(socket)).on('tlsClientError', () => undefined);
      const alphaPort = await listen(tlsEcho(alpha), '127.0.0.3');
      const betaPort = await listen(tlsEcho(beta), '127.0.0.4');
      dns.set('tasks.alpha', ['127.0.0.3']);
      dns.set('tasks.beta', ['127.0.0.4']);
      const srcPort = await freePort();
      await reconfigure({ serviceName: 'alpha', reqMode: 'sni', srcPort: String(srcPort), port: String(alphaPort), serviceDomain: 'alpha.sni.test' });
      await reconfigure({ serviceName: 'beta', reqMode: 'sni', srcPort: String(srcPort), port: String(betaPort), serviceDomain: '*.beta.test' });
      const viaAlpha = await eventually(() => throughSni(srcPort, 'alpha.sni.test'), (answer) => answer !== undefined, 15_000);
      expect(viaAlpha).toEqual({ cn: 'alpha.sni.test', echoed: 'hello over tls' });
      expect(await eventually(() => throughSni(srcPort, 'shop.beta.test'), (answer) => answer !== undefined, 15_000)).toEqual({ cn: 'beta wildcard', echoed: 'hello over tls' });
      // A name no service has: the connection is closed without a handshake.
      expect(await throughSni(srcPort, 'unknown.test')).toBeUndefined();
    }, 30_000);

    test('ports and parameters that cannot work are refused with 400, and nothing changes', async () => {
      const srcPort = await freePort();
      await reconfigure({ serviceName: 'own-port', reqMode: 'tcp', srcPort: String(suite.proxy.settings.httpPort), port: '9000' }, 400);
      await reconfigure({ serviceName: 'tcp-path', reqMode: 'tcp', srcPort: String(srcPort), port: '9000', servicePath: '/x' }, 400);
      await reconfigure({ serviceName: 'tcp-header', reqMode: 'tcp', srcPort: String(srcPort), port: '9000', addReqHeader: 'X-A 1' }, 400);
      await reconfigure({ serviceName: 'no-src', reqMode: 'tcp', port: '9000' }, 400);
      await reconfigure({ serviceName: 'sni-nodomain', reqMode: 'sni', srcPort: String(srcPort), port: '9000' }, 400);
      await reconfigure({ serviceName: 'http-src', servicePath: '/x', srcPort: String(srcPort), port: '9000' }, 400);
      await reconfigure({ serviceName: 'first', reqMode: 'tcp', srcPort: String(srcPort), port: '9000' });
      const taken = await reconfigure({ serviceName: 'second', reqMode: 'tcp', srcPort: String(srcPort), port: '9001' }, 400);
      expect(taken).toContain('first');
      const mixed = await reconfigure({ serviceName: 'third', reqMode: 'sni', srcPort: String(srcPort), port: '9001', serviceDomain: 'x.test' }, 400);
      expect(mixed).toContain('first');
    });
  });
}
