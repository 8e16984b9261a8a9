import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { beforeAll, describe, expect, test } from 'vitest';
import { MAX_CLIENT_HELLO_BYTES, readClientHello, type ClientHelloResult } from '../../src/planes/builtin/client-hello.js';

/** The first TLS record Node's own client sends, as received by a plain TCP server that never answers. */
async function capture(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  let client: tls.TLSSocket | undefined;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      server.on('connection', (socket) => {
        let received = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          received = Buffer.concat([received, chunk]);
          // Framed by hand, not with the parser under test: Node sends its hello as a single record.
          if (received.length >= 5 && received.length >= 5 + received.readUInt16BE(3)) {
            socket.destroy();
            resolve(received);
          }
        });
        socket.on('error', reject);
      });
      client = tls.connect({ host: '127.0.0.1', port, ...options });
      client.on('error', () => undefined); // the handshake never completes; the socket is destroyed below
    });
  } finally {
    client?.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** `message` (a handshake message) framed into TLS records of the given fragment sizes; the last takes the rest. */
function reframe(message: Buffer, sizes: readonly number[], version = 0x0303): Buffer {
  const records: Buffer[] = [];
  let at = 0;
  for (const size of [...sizes, message.length]) {
    if (at >= message.length) break;
    const fragment = message.subarray(at, Math.min(at + size, message.length));
    const header = Buffer.from([22, version >> 8, version & 0xff, 0, 0]);
    header.writeUInt16BE(fragment.length, 3);
    records.push(header, fragment);
    at += fragment.length;
  }
  return Buffer.concat(records);
}

/** A ClientHello (handshake message) with the body replaced, its length field rewritten to match. */
function withBody(body: Buffer): Buffer {
  const header = Buffer.from([1, 0, 0, 0]);
  header.writeUIntBE(body.length, 1, 3);
  return Buffer.concat([header, body]);
}

interface LengthField { readonly name: string; readonly at: number; readonly size: 1 | 2; readonly containerEnd: number }

/** Where the length fields of a captured one-record hello sit, walked independently of the parser. */
function lengthFields(hello: Buffer): { fields: LengthField[]; compressionEnd: number } {
  const fields: LengthField[] = [];
  let at = 5 + 4 + 2 + 32;
  // Reads a length field and moves past it (and past its contents when `skip`).
  const read = (name: string, size: 1 | 2, containerEnd: number, skip: boolean): number => {
    fields.push({ name, at, size, containerEnd });
    const length = hello.readUIntBE(at, size);
    at += size + (skip ? length : 0);
    return length;
  };
  read('session_id', 1, hello.length, true);
  read('cipher_suites', 2, hello.length, true);
  read('compression_methods', 1, hello.length, true);
  const compressionEnd = at - 5 - 4;
  const extensionsEnd = at + 2 + read('extensions', 2, hello.length, false);
  while (at < extensionsEnd) {
    const type = hello.readUInt16BE(at);
    at += 2;
    if (type !== 0) {
      at += 2 + hello.readUInt16BE(at);
      continue;
    }
    const extensionEnd = at + 2 + read('server_name extension', 2, extensionsEnd, false);
    read('server_name list', 2, extensionEnd, false);
    at += 1; // name_type
    read('host_name', 2, extensionEnd, true);
  }
  return { fields, compressionEnd };
}

const KINDS = ['incomplete', 'hello', 'invalid'];
const named = (serverName: string | undefined): ClientHelloResult => ({ kind: 'hello', serverName });
const kindOf = (data: Buffer): string => readClientHello(data).kind;

let hello: Buffer; // servername 'Shop.Example.com', default versions
let message: Buffer; // its handshake message, without the record header

beforeAll(async () => {
  hello = await capture({ servername: 'Shop.Example.com' });
  expect(hello.length).toBe(5 + hello.readUInt16BE(3));
  message = hello.subarray(5);
});

describe('ClientHellos sent by Node', () => {
  test('the host name is read and lower-cased', () => {
    expect(hello.includes('Shop.Example.com')).toBe(true);
    expect(readClientHello(hello)).toEqual(named('shop.example.com'));
  });

  test('a hello without server_name has no server name', async () => {
    expect(readClientHello(await capture({ servername: '' }))).toEqual(named(undefined));
    expect(readClientHello(await capture({}))).toEqual(named(undefined)); // Node sends no SNI to an IP host
  });

  test('TLS 1.2-only and TLS 1.3-only clients', async () => {
    const tls12 = await capture({ servername: 'old.example', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    const tls13 = await capture({ servername: 'new.example', minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
    expect(tls12.equals(tls13)).toBe(false);
    expect(readClientHello(tls12)).toEqual(named('old.example'));
    expect(readClientHello(tls13)).toEqual(named('new.example'));
  });

  test('fed byte by byte it is incomplete until the last byte', () => {
    for (let length = 0; length < hello.length; length++) expect(kindOf(hello.subarray(0, length))).toBe('incomplete');
    expect(readClientHello(hello)).toEqual(named('shop.example.com'));
  });

  test('the records that follow the hello in the same flight are not looked at', () => {
    const changeCipherSpec = Buffer.from([20, 3, 3, 0, 1, 1]);
    expect(readClientHello(Buffer.concat([hello, changeCipherSpec, Buffer.from('junk')]))).toEqual(named('shop.example.com'));
  });
});

describe('a hello spread over several records', () => {
  test.each([1, 2, 3, 4, 5, 40, 100, -1])('split after %i bytes of the message', (split) => {
    const twoRecords = reframe(message, [split < 0 ? message.length + split : split]);
    expect(twoRecords.length).toBe(hello.length + 5);
    for (let length = 0; length < twoRecords.length; length++) expect(kindOf(twoRecords.subarray(0, length))).toBe('incomplete');
    expect(readClientHello(twoRecords)).toEqual(named('shop.example.com'));
  });

  test('one byte per record, with the older record versions', () => {
    expect(readClientHello(reframe(message, Array<number>(message.length).fill(1), 0x0301))).toEqual(named('shop.example.com'));
    expect(readClientHello(reframe(message, [7, 300], 0x0302))).toEqual(named('shop.example.com'));
  });

  test('a hello cut into so many records that it would outgrow the buffer cap is refused', () => {
    const big = withBody(Buffer.concat([message.subarray(4), Buffer.alloc(8000)])); // length only: invalid anyway
    const tiny = reframe(big, Array<number>(big.length).fill(1));
    expect(readClientHello(tiny)).toMatchObject({ kind: 'invalid', reason: expect.stringContaining('spans more than') });
    expect(kindOf(tiny.subarray(0, MAX_CLIENT_HELLO_BYTES - 1))).toBe('incomplete');
  });
});

describe('what is not a ClientHello is invalid', () => {
  const invalidCases: [string, Buffer][] = [
    ['garbage', Buffer.from('8a9f00137ce1d20b44', 'hex')],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n')],
    ['an SSLv2-style hello', Buffer.from('802e0103010015000000100100800300800700c0', 'hex')],
    ['an alert record', Buffer.from('15030300020228', 'hex')],
    ['an application data record', Buffer.from('1703030005', 'hex')],
    ['record version SSL 3.0', Buffer.from('16030000', 'hex')],
    ['record version 3.5', Buffer.from('160305', 'hex')],
    ['record version 2.1', Buffer.from('1602', 'hex')],
    ['a zero-length record', Buffer.from('1603010000', 'hex')],
    ['a record over 2^14 bytes', Buffer.from('1603014001', 'hex')],
    ['a ServerHello', reframe(Buffer.from('020000260303', 'hex'), [])],
    ['an oversized handshake length', reframe(Buffer.from('01ffffff0303', 'hex'), [])],
    ['a handshake length of 2^14', reframe(Buffer.from('010040000303', 'hex'), [])],
  ];
  test.each(invalidCases)('%s', (_name, data) => {
    expect(kindOf(data)).toBe('invalid');
  });

  test('handshake data after the hello in its record', () => {
    expect(kindOf(reframe(Buffer.concat([message, Buffer.from([0])]), []))).toBe('invalid');
  });

  test('a length pointing past its container', () => {
    const { fields } = lengthFields(hello);
    expect(fields.map((field) => field.name)).toEqual(['session_id', 'cipher_suites', 'compression_methods', 'extensions', 'server_name extension', 'server_name list', 'host_name']);
    for (const field of fields) {
      if (field.name === 'compression_methods') continue; // 1 byte: cannot reach past the hello
      const broken = Buffer.from(hello);
      const pastEnd = field.containerEnd - (field.at + field.size) + 1;
      broken.writeUIntBE(field.name === 'session_id' ? 33 : pastEnd, field.at, field.size);
      expect({ field: field.name, result: readClientHello(broken).kind }).toEqual({ field: field.name, result: 'invalid' });
    }
  });

  test('the hello cut short anywhere, with its outer lengths made to match', () => {
    const { compressionEnd } = lengthFields(hello);
    const body = message.subarray(4);
    for (let length = 0; length < body.length; length++) {
      const result = readClientHello(reframe(withBody(body.subarray(0, length)), []));
      // Cut right after compression_methods it is a valid extension-less (pre-TLS 1.2 style) hello.
      expect({ length, result }).toEqual({ length, result: length === compressionEnd ? named(undefined) : expect.objectContaining({ kind: 'invalid' }) });
    }
  });

  test('a host name with bytes other than letters, digits, - and .', async () => {
    expect(kindOf(await capture({ servername: 'bad_name.example' }))).toBe('invalid');
    const at = hello.indexOf('Shop.Example.com');
    for (const byte of [0xc3, 0x00, 0x20, 0x2f, 0x3a]) {
      const broken = Buffer.from(hello);
      broken[at + 4] = byte;
      expect(kindOf(broken)).toBe('invalid');
    }
  });

  test('a repeated server_name extension', () => {
    const { fields } = lengthFields(hello);
    const extension = fields.find((field) => field.name === 'server_name extension');
    const extensions = fields.find((field) => field.name === 'extensions');
    if (extension === undefined || extensions === undefined) throw new Error('no server_name in the capture');
    const bytes = hello.subarray(extension.at - 2, extension.at + 2 + hello.readUInt16BE(extension.at));
    const body = Buffer.concat([message.subarray(4), bytes]);
    const at = extensions.at - 5 - 4;
    body.writeUInt16BE(body.readUInt16BE(at) + bytes.length, at);
    expect(readClientHello(reframe(withBody(body), []))).toEqual({ kind: 'invalid', reason: 'extension 0 repeated' });
  });
});

test('random damage to a real hello never throws and gives one of the three answers', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      fc.nat(),
      (flips, cut) => {
        const damaged = Buffer.from(hello);
        for (const [at, value] of flips) damaged[at % damaged.length] = value;
        for (const data of [damaged, damaged.subarray(0, cut % (damaged.length + 1)), reframe(damaged.subarray(5), [cut % 64 + 1])]) {
          const result = readClientHello(data);
          expect(KINDS).toContain(result.kind);
          if (result.kind === 'incomplete') expect(data.length).toBeLessThan(MAX_CLIENT_HELLO_BYTES);
          if (result.kind === 'hello' && result.serverName !== undefined) expect(result.serverName).toMatch(/^[a-z0-9.-]+$/);
        }
      },
    ),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const data = Buffer.concat([Buffer.from([22, 3, 1, 2, 0, 1, 0, 1, 252]), bytes]);
      expect(KINDS).toContain(readClientHello(data).kind);
    }),
    { numRuns: 2000 },
  );
});
