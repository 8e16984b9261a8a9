/**
 * TCP and TLS pass-through (issue 11), the same cases on both planes with real servers: a TCP
 * echo service reached on its srcPort, idle clients closed after timeoutClient, TLS passed
 * through by server name so the client sees the replica's own certificate, and the refusals.
 * TCP groups: services of one serviceGroup sharing a srcPort, balanced over all their replicas
 * by balanceGroup and weighted by weight, and the rules that keep a port to one group.
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

/** Connects to the proxy's `port` (from `localAddress` if given); resolves with the replica's greeting line (its identity, '' if the connection closed first) and the socket, left open. */
function greeted(port: number, localAddress?: string): Promise<{ identity: string; socket: net.Socket }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) });
    let got = '';
    socket.on('data', (chunk: Buffer) => {
      got += chunk.toString('utf8');
      if (got.endsWith('\n')) resolve({ identity: got.trim(), socket });
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ identity: '', socket }));
  });
}

/** The identities of the replicas `count` connections in a row reach, each closed once greeted. */
async function identities(port: number, count: number, localAddress?: string): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < count; i++) {
    const { identity, socket } = await greeted(port, localAddress);
    socket.destroy();
    seen.push(identity);
  }
  return seen;
}

function tally(names: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
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

    /** A replica that greets each connection with `identity` and a line break, and keeps it open until the client closes. */
    const greeter = async (identity: string, address: string, port: number) => {
      const sockets = new Set<net.Socket>();
      const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
        socket.write(`${identity}\n`);
      });
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(port, address, () => resolve()));
      return {
        connections: () => sockets.size,
        /** Stops listening and cuts its connections: the replica is gone. */
        stop: () => {
          server.close();
          for (const socket of sockets) socket.destroy();
        },
      };
    };

    /** Configures `name` as a reqMode=tcp member of `group` on `srcPort`, its replicas on `port`. */
    const member = (name: string, group: string, srcPort: number, port: number, extra: Record<string, string> = {}) =>
      reconfigure({ serviceName: name, reqMode: 'tcp', srcPort: String(srcPort), port: String(port), serviceGroup: group, ...extra });

    /** A member `name` of `group` on `srcPort` with one replica at `address`, greeting as `identity`; the reconfigure reply too. */
    const memberWithReplica = async (name: string, group: string, srcPort: number, identity: string, address: string, extra: Record<string, string> = {}) => {
      const port = await freePort();
      const replica = await greeter(identity, address, port);
      dns.set(`tasks.${name}`, [address]);
      return { replica, reply: await member(name, group, srcPort, port, extra) };
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

    test('a serviceGroup shares one srcPort among its services: connections spread over every member\'s replicas, and a removed member leaves the others serving', async () => {
      const [aPort, bPort, srcPort] = [await freePort(), await freePort(), await freePort()];
      await greeter('a1', '127.0.0.10', aPort);
      await greeter('a2', '127.0.0.11', aPort);
      await greeter('b1', '127.0.0.12', bPort);
      dns.set('tasks.pool-a', ['127.0.0.10']);
      dns.set('tasks.pool-b', ['127.0.0.12']);
      await member('pool-a', 'pool', srcPort, aPort, { balanceGroup: 'roundrobin' });
      await member('pool-b', 'pool', srcPort, bPort, { balanceGroup: 'roundrobin' });
      const both = await eventually(() => identities(srcPort, 6), (names) => new Set(names).size === 2 && !names.includes(''), 15_000);
      expect(new Set(both)).toEqual(new Set(['a1', 'b1']));

      // A replica of pool-a that starts later joins the group's port (on HAProxy, a server added at run time).
      dns.set('tasks.pool-a', ['127.0.0.10', '127.0.0.11']);
      await eventually(() => identities(srcPort, 9), (names) => new Set(names).size === 3, 15_000);
      const counts = tally(await identities(srcPort, 30));
      expect([...counts.keys()].sort()).toEqual(['a1', 'a2', 'b1']);
      for (const count of counts.values()) expect(count).toBeGreaterThanOrEqual(7);

      expect((await suite.proxy.api('remove', { serviceName: 'pool-a' })).status).toBe(200);
      await eventually(() => identities(srcPort, 6), (names) => names.every((name) => name === 'b1'), 15_000);
      expect(await identities(srcPort, 10)).toEqual(Array<string>(10).fill('b1'));
    }, 60_000);

    test('balanceGroup=leastconn sends new connections to the member replica with the fewest open', async () => {
      const srcPort = await freePort();
      await memberWithReplica('lc-x', 'lc', srcPort, 'x', '127.0.0.13', { balanceGroup: 'leastconn' });
      const y = (await memberWithReplica('lc-y', 'lc', srcPort, 'y', '127.0.0.14', { balanceGroup: 'leastconn' })).replica;
      await eventually(() => identities(srcPort, 4), (names) => new Set(names).size === 2 && !names.includes(''), 15_000);

      const held: { identity: string; socket: net.Socket }[] = [];
      try {
        for (let i = 0; i < 4; i++) held.push(await greeted(srcPort));
        expect(tally(held.map((connection) => connection.identity))).toEqual(new Map([['x', 2], ['y', 2]]));
        // y's clients leave; x still holds two connections.
        for (const connection of held) if (connection.identity === 'y') connection.socket.destroy();
        await eventually(async () => y.connections(), (open) => open === 0, 10_000);
        // A round-robin would alternate; least connections fills y up to x's count first.
        for (let i = 0; i < 2; i++) held.push(await greeted(srcPort));
        expect(held.slice(4).map((connection) => connection.identity)).toEqual(['y', 'y']);
      } finally {
        for (const connection of held) connection.socket.destroy();
      }
    }, 60_000);

    test('weights share a group\'s connections: weight 3 against weight 1 gets about three in four', async () => {
      const srcPort = await freePort();
      const heavy = await memberWithReplica('split-heavy', 'split', srcPort, 'heavy', '127.0.0.15', { weight: '3' });
      expect((JSON.parse(heavy.reply) as { ServiceDest: unknown[] }).ServiceDest[0]).toMatchObject({ SrcPort: srcPort, ServiceGroup: 'split', BalanceGroup: '', Weight: 3 });
      await memberWithReplica('split-light', 'split', srcPort, 'light', '127.0.0.16', { weight: '1' });
      await eventually(() => identities(srcPort, 8), (names) => new Set(names).size === 2 && !names.includes(''), 15_000);
      const counts = tally(await identities(srcPort, 400));
      expect((counts.get('heavy') ?? 0) + (counts.get('light') ?? 0)).toBe(400);
      const heavyShare = (counts.get('heavy') ?? 0) / 400;
      expect(heavyShare).toBeGreaterThanOrEqual(0.65);
      expect(heavyShare).toBeLessThanOrEqual(0.85);
    }, 60_000);

    test('balanceGroup=source keeps each client address on one replica of the group and spreads the addresses', async () => {
      const srcPort = await freePort();
      await memberWithReplica('src-one', 'hashed', srcPort, 'one', '127.0.0.17', { balanceGroup: 'source' });
      await memberWithReplica('src-two', 'hashed', srcPort, 'two', '127.0.0.18', { balanceGroup: 'source', weight: '2' });
      // Both members are in rotation: the clients below would otherwise all land on the first.
      await eventually(
        () => Promise.all(Array.from({ length: 8 }, (_, i) => identities(srcPort, 1, `127.0.2.${i + 1}`))),
        (seen) => new Set(seen.flat()).size === 2 && !seen.flat().includes(''),
        15_000,
      );
      const chosen = new Set<string>();
      for (let i = 1; i <= 16; i++) {
        const seen = new Set(await identities(srcPort, 4, `127.0.2.${i}`));
        expect(seen.size, `client 127.0.2.${i}`).toBe(1);
        chosen.add([...seen][0] as string);
      }
      expect(chosen).toEqual(new Set(['one', 'two']));
    }, 60_000);

    test('a member replica that stops is left out: its checkTcp fails and the group keeps serving from the others', async () => {
      const srcPort = await freePort();
      const checked = { checkTcp: 'true', healthCheckInterval: '1', healthCheckFall: '1' };
      await memberWithReplica('hc-up', 'checked', srcPort, 'up', '127.0.0.19', checked);
      const down = (await memberWithReplica('hc-down', 'checked', srcPort, 'down', '127.0.0.20', checked)).replica;
      await eventually(() => identities(srcPort, 4), (names) => new Set(names).size === 2 && !names.includes(''), 15_000);
      down.stop();
      await eventually(() => identities(srcPort, 6), (names) => names.every((name) => name === 'up'), 15_000);
      expect(await identities(srcPort, 10)).toEqual(Array<string>(10).fill('up'));
    }, 60_000);

    test('group rules that cannot hold are refused with 400 naming the parameter or the member in the way, and the group keeps serving', async () => {
      const [srcPort, plainPort, otherPort] = [await freePort(), await freePort(), await freePort()];
      await memberWithReplica('keep-a', 'keep', srcPort, 'kept', '127.0.0.21', { balanceGroup: 'leastconn' });
      await eventually(() => identities(srcPort, 2), (names) => names.every((name) => name === 'kept'), 15_000);
      await reconfigure({ serviceName: 'plain-tcp', reqMode: 'tcp', srcPort: String(plainPort), port: '9000' });

      const refused = async (params: Record<string, string>, ...mentions: string[]) => {
        const message = (JSON.parse(await reconfigure(params, 400)) as { Message: string }).Message;
        for (const mention of mentions) expect(message).toContain(mention);
      };
      const tcp = { reqMode: 'tcp', srcPort: String(otherPort), port: '9000' };
      await refused({ serviceName: 'g-http', servicePath: '/g', port: '80', serviceGroup: 'keep' }, 'serviceGroup', 'reqMode=tcp');
      await refused({ serviceName: 'g-sni', reqMode: 'sni', srcPort: String(otherPort), port: '443', serviceDomain: 'g.test', serviceGroup: 'keep' }, 'serviceGroup', 'reqMode=tcp');
      await refused({ serviceName: 'g-weight', ...tcp, weight: '2' }, 'weight', 'serviceGroup');
      await refused({ serviceName: 'g-balance', ...tcp, balanceGroup: 'leastconn' }, 'balanceGroup', 'serviceGroup');
      await refused({ serviceName: 'g-heavy', ...tcp, serviceGroup: 'keep', weight: '300' }, 'weight', '256');
      await refused({ serviceName: 'g-name', ...tcp, serviceGroup: 'keep\n  server evil 10.9.9.9:1' }, 'serviceGroup', 'group name');
      // The port's own rules, checked by the data plane, name the member holding the port.
      await refused({ serviceName: 'g-alone', reqMode: 'tcp', srcPort: String(srcPort), port: '9000' }, 'srcPort', 'keep-a');
      await refused({ serviceName: 'g-other', reqMode: 'tcp', srcPort: String(srcPort), port: '9000', serviceGroup: 'other' }, 'srcPort', 'keep-a');
      await refused({ serviceName: 'g-disagree', reqMode: 'tcp', srcPort: String(srcPort), port: '9000', serviceGroup: 'keep', balanceGroup: 'roundrobin' }, 'balanceGroup', 'keep-a');
      await refused({ serviceName: 'g-join', reqMode: 'tcp', srcPort: String(plainPort), port: '9000', serviceGroup: 'keep' }, 'srcPort', 'plain-tcp');

      // Nothing changed: the group serves its port with its one member.
      expect(await identities(srcPort, 5)).toEqual(Array<string>(5).fill('kept'));
      const config = await suite.proxy.api('config');
      expect(config.text).not.toContain('evil');
    }, 60_000);

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
