/**
 * Property-based injection test: arbitrary strings, control characters, Unicode, HAProxy syntax
 * and huge values in every parameter. The answer is always a 4xx with a clear message, or a
 * route that does exactly what was asked and renders to configuration lines of known shapes.
 * Accepted services are finally checked together by `haproxy -c`, and a sample goes through
 * the real control API, which must never answer 5xx.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ACME_MAP, CRT_LIST, mapText, renderHaproxy } from '../../src/planes/haproxy/render.js';
import { generateSelfSigned } from '../../src/tls/self-signed.js';
import type { Service, ServiceEntry } from '../../src/routes/model.js';
import { streamConflict } from '../../src/routes/listeners.js';
import { parseServiceParams } from '../../src/routes/params.js';
import { loadSettings } from '../../src/settings/settings.js';
import type { Settings } from '../../src/settings/settings.js';
import { TestDnsServer } from '../support/dns-server.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const run = promisify(execFile);

const HOSTILE = ['\n', '\r', '\0', ' ', '\t', '"', "'", '#', '\\', '%[', '%[path]', ']', '${HOME}', ',', '\u2028', 'é', '\uFEFF', '`', ';', '|', '{', '}'];
const OPTIONAL_KEYS = [
  'servicePath', 'serviceDomain', 'pathType', 'reqMode', 'addressMode', 'timeoutServer', 'timeoutTunnel', 'distribute',
  'httpsOnly', 'httpsRedirectCode', 'redirectWhenHttpProto', 'redirectFromDomain', 'serviceCert', 'httpsPort', 'sslVerifyNone', 'letsencrypt',
  'outboundHostname', 'addReqHeader', 'setReqHeader', 'delReqHeader', 'addResHeader', 'setResHeader', 'delResHeader',
  'allowedMethods', 'deniedMethods', 'denyHttp', 'users', 'ignoreAuthorization', 'reqPathSearchReplace', 'compressionAlgo', 'compressionType',
  'servicePathExclude', 'serviceHeader', 'userAgent', 'serviceDomainAlgo', 'isDefaultBackend', 'allowedIps', 'deniedIps',
  // Refused without the operator's ALLOW_RAW_HAPROXY, which parsing here does not have.
  'backendExtra',
  'aclName', 'discoveryType', 'serviceDomainMatchAll', 'xForwardedProto', 'connectionMode', 'addHeader', 'setHeader', 'userDef', 'serviceColor',
  'srcPort', 'timeoutClient', 'balance', 'sessionType', 'healthCheckPath', 'checkTcp', 'healthCheckInterval', 'healthCheckRise', 'healthCheckFall',
  'serviceGroup', 'balanceGroup', 'weight',
];

const hostile = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(...HOSTILE),
  fc.string({ unit: fc.constantFrom(...HOSTILE, 'a', '/', '.', '-', '*'), maxLength: 30 }),
  fc.nat({ max: 200_000 }).map((n) => String(n)),
  fc.constant('x'.repeat(100_000)),
);
const plausible = {
  serviceName: fc.stringMatching(/^[a-z][a-z0-9_.-]{0,20}$/),
  servicePath: fc.array(fc.stringMatching(/^\/[A-Za-z0-9._~!$&()*+;=:@/-]{0,20}$/), { minLength: 1, maxLength: 3 }).map((p) => p.join(',')),
  serviceDomain: fc.stringMatching(/^(\*\.)?[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}$/),
  port: fc.integer({ min: 1, max: 65535 }).map(String),
  pathType: fc.constant('path_beg'),
  reqMode: fc.constantFrom('http', 'http', 'tcp', 'sni'),
  srcPort: fc.integer({ min: 1, max: 65535 }).map(String),
  timeoutClient: fc.integer({ min: 1, max: 86_400 }).map(String),
  addressMode: fc.constantFrom('vip', 'tasks'),
  timeoutServer: fc.integer({ min: 1, max: 86_400 }).map(String),
  timeoutTunnel: fc.integer({ min: 1, max: 86_400 }).map(String),
  distribute: fc.constant('true'),
  httpsOnly: fc.constantFrom('true', 'false'),
  redirectWhenHttpProto: fc.constantFrom('true', 'false'),
  httpsRedirectCode: fc.constantFrom('301', '302', '303', '307', '308'),
  redirectFromDomain: fc.stringMatching(/^[a-z0-9]{1,10}\.old$/),
  serviceCert: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/),
  httpsPort: fc.integer({ min: 1, max: 65535 }).map(String),
  sslVerifyNone: fc.constantFrom('true', 'false'),
  letsencrypt: fc.constantFrom('true', 'false'),
  addReqHeader: fc.stringMatching(/^X-[A-Za-z]{1,8} [ -~]{1,20}$/),
  setReqHeader: fc.stringMatching(/^X-[A-Za-z]{1,8} [ -~]{1,20}$/),
  addResHeader: fc.stringMatching(/^X-[A-Za-z]{1,8} [ -~]{1,20}$/),
  setResHeader: fc.stringMatching(/^X-[A-Za-z]{1,8} [ -~]{1,20}$/),
  delReqHeader: fc.stringMatching(/^X-[A-Za-z]{1,8}$/),
  delResHeader: fc.stringMatching(/^X-[A-Za-z]{1,8}$/),
  allowedMethods: fc.constantFrom('GET', 'GET,HEAD', 'POST,PUT,PATCH'),
  deniedMethods: fc.constantFrom('DELETE', 'PUT,DELETE'),
  denyHttp: fc.constantFrom('true', 'false'),
  users: fc.array(fc.tuple(fc.stringMatching(/^[a-z]{1,8}$/), fc.stringMatching(/^[ -~]{1,12}$/)), { minLength: 1, maxLength: 3 }).map((pairs) => pairs.map(([u, p]) => `${u}:${p}`).join(',')),
  ignoreAuthorization: fc.constantFrom('true', 'false'),
  compressionAlgo: fc.constantFrom('gzip', 'deflate', 'gzip deflate', 'br gzip'),
  compressionType: fc.constantFrom('text/html', 'text/html text/css', 'application/json'),
  reqPathSearchReplace: fc.array(fc.tuple(fc.stringMatching(/^\^?\/[a-z.]{1,8}$/), fc.stringMatching(/^\/[a-z]{0,8}$/)), { minLength: 1, maxLength: 2 }).map((pairs) => pairs.map(([a, b]) => `${a},${b}`).join(':')),
  servicePathExclude: fc.array(fc.stringMatching(/^\/[A-Za-z0-9._~!$&()*+;=:@/-]{0,20}$/), { minLength: 1, maxLength: 3 }).map((p) => p.join(',')),
  serviceHeader: fc.array(fc.stringMatching(/^X-[A-Za-z]{1,8}:[ -~]{1,20}$/), { minLength: 1, maxLength: 2 }).map((p) => p.join(',')),
  userAgent: fc.array(fc.stringMatching(/^[ -~]{1,20}$/), { minLength: 1, maxLength: 3 }).map((p) => p.join(',')),
  serviceDomainAlgo: fc.constantFrom('hdr(host)', 'hdr_beg(host)', 'hdr_end(host)', 'hdr_dom(host)'),
  isDefaultBackend: fc.constantFrom('true', 'false'),
  allowedIps: fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, n]) => `${a}/${n}`)), { minLength: 1, maxLength: 3 }).map((p) => p.join(',')),
  deniedIps: fc.array(fc.oneof(fc.ipV4(), fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, n]) => `${a}/${n}`)), { minLength: 1, maxLength: 3 }).map((p) => p.join(',')),
  balance: fc.constantFrom('roundrobin', 'leastconn', 'source'),
  healthCheckPath: fc.stringMatching(/^\/[A-Za-z0-9._~!$&()*+;=:@/-]{0,20}$/),
  checkTcp: fc.constantFrom('true', 'false'),
  healthCheckInterval: fc.integer({ min: 1, max: 3600 }).map(String),
  healthCheckRise: fc.integer({ min: 1, max: 100 }).map(String),
  healthCheckFall: fc.integer({ min: 1, max: 100 }).map(String),
  sessionType: fc.constant('sticky-server'),
  aclName: fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/),
  discoveryType: fc.constantFrom('DNS', 'Overlay'),
  serviceDomainMatchAll: fc.constantFrom('true', 'false'),
  xForwardedProto: fc.constantFrom('true', 'false'),
  connectionMode: fc.constantFrom('http-keep-alive', 'http-server-close', 'httpclose'),
  addHeader: fc.stringMatching(/^X-[A-Za-z]{1,8} [ -~]{1,20}$/),
  setHeader: fc.stringMatching(/^X-[A-Za-z]{1,8} [ -~]{1,20}$/),
  outboundHostname: fc.oneof(fc.stringMatching(/^[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}$/), fc.ipV4()),
  serviceGroup: fc.oneof(fc.constantFrom('pg', 'cache'), fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/)),
  balanceGroup: fc.constantFrom('roundrobin', 'leastconn', 'source'),
  weight: fc.integer({ min: 1, max: 256 }).map(String),
};
/** A value for `key`: usually plausible, sometimes plausible with a hostile piece, sometimes hostile. */
const valueFor = (key: string) => {
  const base = (plausible as Record<string, fc.Arbitrary<string>>)[key] ?? hostile;
  return fc.oneof(
    { weight: 8, arbitrary: base },
    { weight: 1, arbitrary: fc.tuple(base, fc.constantFrom(...HOSTILE), base).map(([a, h, b]) => `${a}${h}${b}`) },
    { weight: 1, arbitrary: hostile },
  );
};
const paramsArbitrary = fc
  .tuple(
    fc
      .tuple(fc.constantFrom('servicePath', 'serviceDomain'), fc.subarray(OPTIONAL_KEYS, { maxLength: 3 }))
      .map(([routeKey, keys]) => ['serviceName', 'port', routeKey, ...keys]),
    fc.constantFrom([], [], ['servicePath.1', 'port.1'], ['serviceDomain.1', 'port.1'], ['servicePath.1'], ['port.1']),
    fc.option(fc.tuple(hostile, hostile), { freq: 4 }),
  )
  .chain(([keys, indexed, extra]) =>
    fc.record(Object.fromEntries([...keys, ...indexed].map((key) => [key, valueFor(key.split('.')[0] as string)]))).map((record) => ({
      ...(extra === null ? {} : { [extra[0]]: extra[1] }),
      ...record,
    })),
  );

/** One in five sets carries a parameter that writes frontend rules, so those lines are always exercised. */
const FRONTEND_KEYS = ['servicePathExclude', 'serviceHeader', 'userAgent', 'isDefaultBackend'] as const;
/** Members of serviceGroups on a few shared ports, so group backends (several members' servers, weights) are rendered and checked too. */
const GROUP_TUNING = ['balanceGroup', 'weight', 'timeoutClient', 'timeoutServer', 'checkTcp', 'addressMode', 'outboundHostname'];
const groupMemberArbitrary = fc
  .tuple(fc.subarray(GROUP_TUNING, { maxLength: 3 }), fc.constantFrom('20000', '20001'))
  .chain(([keys, srcPort]) =>
    fc.record(Object.fromEntries(['serviceName', 'port', 'serviceGroup', ...keys].map((key) => [key, valueFor(key)]))).map((record) => ({ ...record, reqMode: 'tcp', srcPort })),
  );
const mixedParams = fc.oneof(
  { weight: 4, arbitrary: paramsArbitrary },
  { weight: 1, arbitrary: fc.tuple(paramsArbitrary, fc.constantFrom(...FRONTEND_KEYS)).chain(([params, key]) => valueFor(key).map((value) => ({ ...params, [key]: value }))) },
  { weight: 1, arbitrary: groupMemberArbitrary },
);

const settings = loadSettings(['--state-dir', '/tmp/fp-property'], {}) as Settings;
const renderOptions = { settings, mapDir: '/tmp/fp-property/maps', runtimeDir: '/tmp/fp-property/maps', runDir: '/tmp/fp-property/run' };
/** Every backend gets two replicas, so server lines are rendered and checked too. */
const layout = { addresses: () => ['10.0.0.1', '10.0.0.2'], spares: 2 };

/** Every line a service may add to the configuration. */
const NAME = '[A-Za-z0-9][A-Za-z0-9_.-]*';
const SERVER_TLS = `(?: ssl verify none| ssl verify required ca-file @system-ca verifyhost ${NAME} sni str\\(${NAME}\\))?(?: check inter \\d+s rise \\d+ fall \\d+ observe layer[47] error-limit \\d+ on-error mark-down)?`;
const BACKEND_LINES = [
  new RegExp(`^backend (?:be_${NAME}_\\d+(?:_tls)?|tg_${NAME}_\\d+|fp_spare_\\d+)$`),
  /^ {2}timeout (server|tunnel) \d+s$/,
  /^ {2}option (?:http-server-close|httpclose)$/,
  /^ {2}http-after-response set-header Connection close$/,
  /^ {2}balance (?:leastconn|source)$/,
  /^ {2}cookie FPSERVER insert indirect nocache dynamic$/,
  /^ {2}dynamic-cookie-key flow-proxy$/,
  /^ {2}mode tcp$/,
  /^ {2}no option idle-close-on-response$/,
  /^ {2}no log$/,
  /^ {2}option httpchk GET \/[A-Za-z0-9._~!$&()*+;=:@/%-]*$/,
  new RegExp(`^ {2}server s\\d+ (?:10\\.0\\.0\\.[12]:\\d+(?: weight \\d+)?|127\\.0\\.0\\.1:1 disabled)${SERVER_TLS}$`),
  /^ {2}http-request redirect location https:\/\/%\[req\.hdr\(host\),field\(1,:\)\](?::\d+)?%\[pathq\] code 30[12378] if !\{ ssl_fc \} \{ req\.hdr\(host\) -m found \}$/,
  /^ {2}http-request redirect scheme https code 30[12378] if !\{ ssl_fc \} \{ var\(txn\.fp_client_proto\) -m str http \}$/,
  /^ {2}http-request deny deny_status 403 (?:unless \{ ssl_fc \}|(?:if|unless) \{ method [A-Z]+(?: [A-Z]+)* \})$/,
  /^ {2}http-request deny deny_status 403 (?:if|unless) \{ (?:src|var\(txn\.fp_client\) -m ip) [0-9a-fA-F.:/]+(?: [0-9a-fA-F.:/]+)* \}$/,
  new RegExp(`^ {2}http-(?:request|response) del-header ${NAME}$`),
  // Single-quoted literal: no quote inside, '%' only doubled.
  new RegExp(`^ {2}http-(?:request|response) (?:set|add)-header ${NAME} '(?:[\\x20-\\x24\\x26\\x28-\\x7e]|%%)+'$`),
  /^ {2}http-request auth realm "Flow Proxy" unless \{ http_auth\(ul_[0-9a-f]{16}\) \}$/,
  /^ {2}http-request del-header Authorization$/,
  /^userlist ul_[0-9a-f]{16}$/,
  /^ {2}compression algo (?:gzip|deflate|br)(?: (?:gzip|deflate|br))*$/,
  /^ {2}compression type [A-Za-z0-9.+*\/-]+(?: [A-Za-z0-9.+*\/-]+)*$/,
  /^ {2}http-request set-path %\[path,regsub\(\^?[A-Za-z0-9/_~.-]+,[A-Za-z0-9/_~.-]*\)\]$/,
  /^ {2}http-request set-path \/%\[path\] unless \{ path -m beg \/ \}$/,
  // Plain passwords single-quoted without a quote inside; hashes in crypt(3)'s alphabet.
  /^ {2}user [A-Za-z0-9_.@-]+ (?:insecure-password '[\x20-\x26\x28-\x7e]+'|password \$[0-9a-z]+\$[./0-9A-Za-z$=]+)$/,
  /^$/,
];
/** Every line a service may add to the frontend: rules of routes with conditions, the default backend. */
const PATH = "/[A-Za-z0-9._~!$&()*+;=:@/%-]*";
const TEXT = "'[\\x20\\x21\\x24-\\x26\\x28-\\x5b\\x5d-\\x7a\\x7c\\x7e]+'";
const ACL = [
  `\\{ req\\.hdr\\(host\\),field\\(1,:\\),lower -m (?:str|beg|end|dom) \\.?[a-z0-9.-]+ \\}`,
  `\\{ path_beg ${PATH} \\}`,
  `!\\{ path_beg ${PATH}(?: ${PATH})* \\}`,
  `\\{ req\\.hdr\\(${NAME}\\) -m str -- ${TEXT} \\}`,
  `\\{ req\\.fhdr\\(User-Agent\\) -m sub -i -- ${TEXT}(?: ${TEXT})* \\}`,
].join('|');
const BACKEND = `(?:be|tg)_${NAME}_\\d+`;
const FRONTEND_LINES = [
  new RegExp(`^ {2}use_backend ${BACKEND}(?:_tls)? if (?:\\{ ssl_fc \\} )?(?:${ACL})(?: (?:${ACL}))*$`),
  new RegExp(`^ {2}use_backend %\\[path,map_beg\\(/tmp/fp-property/maps/paths\\.map,${BACKEND}\\)\\]$`),
  new RegExp(`^ {2}default_backend ${BACKEND}$`),
  /^frontend (?:tcp|sni)_\d+$/,
  /^ {2}mode tcp$/,
  /^ {2}no option idle-close-on-response$/,
  /^ {2}no log$/,
  /^ {2}bind 0\.0\.0\.0:\d+$/,
  /^ {2}timeout client \d+s$/,
  /^ {2}option tcplog$/,
  /^ {2}tcp-request inspect-delay \d+s$/,
  /^ {2}tcp-request content accept if \{ req\.ssl_hello_type 1 \}$/,
  new RegExp(`^ {2}use_backend ${BACKEND} if \\{ req\\.ssl_sni,lower -m (?:str|end) \\.?[a-z0-9.-]+ \\}$`),
  /^$/,
  new RegExp(`^ {2}http-request set-var\\(txn\\.fp_backend\\) str\\(${BACKEND}\\) if !\\{ var\\(txn\\.fp_backend\\) -m found \\}$`),
];
/** The frontend of a table without routes of its own, feature by feature. */
const plainFrames = new Map<string, Set<string>>();

/** key value: a backend, a host, or (services.map) a service name as a JSON string. */
const MAP_LINE = /^[*A-Za-z0-9.\-/][!-~]* (?:\*?[A-Za-z0-9_.-]+|"[A-Za-z0-9_.-]+")$/;

function expectSafeRendering(service: Service): void {
  const entry: ServiceEntry = { service, params: {}, source: 'api' };
  const rendered = renderHaproxy({ version: 1, services: new Map([[service.name, entry]]) }, renderOptions, layout);
  const backends = rendered.config.slice(rendered.frame.length + rendered.config.indexOf('\n') + 1);
  for (const line of backends.split('\n')) expect(BACKEND_LINES.some((shape) => shape.test(line)), line).toBe(true);
  const plain: Service = { ...service, reqMode: 'http', conditions: undefined, isDefaultBackend: undefined };
  const featureKey = JSON.stringify(rendered.features);
  let plainFrame = plainFrames.get(featureKey);
  if (plainFrame === undefined) {
    const frame = renderHaproxy({ version: 1, services: new Map([[service.name, { service: plain, params: {}, source: 'api' }]]) }, renderOptions, layout).frame;
    plainFrames.set(featureKey, (plainFrame = new Set(frame.split('\n'))));
  }
  for (const line of rendered.frame.split('\n')) {
    if (!plainFrame.has(line)) expect(FRONTEND_LINES.some((shape) => shape.test(line)), line).toBe(true);
  }
  for (const content of Object.values(rendered.maps)) {
    for (const line of mapText(content).split('\n').filter(Boolean)) expect(line).toMatch(MAP_LINE);
  }
}

function expectDoesWhatWasAsked(params: Record<string, string>, service: Service): void {
  const list = (raw: string | undefined) => (raw === undefined ? [] : [...new Set(raw.split(',').map((v) => v.replace(/^ +| +$/g, '')))]);
  const first = service.destinations.find((d) => d.index === 0);
  if (params.servicePath !== undefined) expect(first?.paths).toEqual(list(params.servicePath));
  if (params.serviceDomain !== undefined) expect(first?.domains).toEqual(list(params.serviceDomain.toLowerCase()));
  if (params.port !== undefined) expect(first?.port).toBe(Number(params.port));
  if (params.serviceGroup !== undefined) expect(first?.group?.name).toBe(params.serviceGroup);
  if (params.weight !== undefined) expect(first?.group?.weight).toBe(Number(params.weight));
  expect(service.name).toBe(params.serviceName);
}

const accepted = new Map<string, Service>();

test('10,000 generated parameter sets: a clear 4xx, or a route that does exactly what was asked', () => {
  let refused = 0;
  let acceptedCount = 0;
  let inFrontendCount = 0;
  let groupedCount = 0;
  fc.assert(
    fc.property(mixedParams, (params) => {
      const result = parseServiceParams(params);
      if (!result.ok) {
        refused++;
        expect([400, 409]).toContain(result.error.status);
        expect(result.error.message.length).toBeGreaterThan(10);
        expect(result.error.message.length).toBeLessThan(600);
        expect(result.error.message).not.toMatch(/[\0-\x1f]/);
        return;
      }
      expectDoesWhatWasAsked(params, result.service);
      expectSafeRendering(result.service);
      acceptedCount++;
      if (result.service.conditions !== undefined || result.service.isDefaultBackend === true) inFrontendCount++;
      if (result.service.destinations.some((d) => d.group !== undefined)) groupedCount++;
      if (accepted.size < 400) accepted.set(result.service.name, result.service);
    }),
    { numRuns: 10_000 },
  );
  // The generator must exercise both outcomes, or the property proves little.
  expect(refused).toBeGreaterThan(1000);
  expect(acceptedCount).toBeGreaterThan(200);
  expect(inFrontendCount).toBeGreaterThan(20);
  expect(groupedCount).toBeGreaterThan(100);
}, 120_000);

test.each([
  ['without access logs', settings],
  ['with access logs', { ...settings, accessLog: 'stdout' as const }],
  ['with trusted proxies and PROXY protocol', { ...settings, trustedProxies: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'], proxyProtocolPorts: new Set([settings.httpPort, settings.httpsPort]) }],
])('every accepted service, rendered together %s, passes haproxy -c', async (_, rendering) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-property-'));
  const services = new Map<string, ServiceEntry>();
  const claimed = new Set<string>();
  for (const service of accepted.values()) {
    // The HAProxy plane refuses brotli before rendering.
    if (service.compression?.algos.includes('br') === true) continue;
    const entry: ServiceEntry = { service, params: {}, source: 'api' };
    if (service.reqMode !== 'http') {
      // tcp and sni ports as the planes accept them: members of a group share theirs.
      const candidate = new Map(services).set(service.name, entry);
      if (streamConflict({ version: 1, services: candidate }, [rendering.httpPort, rendering.httpsPort]) === undefined) services.set(service.name, entry);
      continue;
    }
    // One service per (domain, path), as the route table enforces.
    const keys = service.destinations.flatMap((d) => (d.domains.length ? d.domains : ['']).flatMap((h) => (d.paths.length ? d.paths : ['/']).map((p) => h + p)));
    if (keys.some((key) => claimed.has(key))) continue;
    keys.forEach((key) => claimed.add(key));
    services.set(service.name, entry);
  }
  const rendered = renderHaproxy({ version: 1, services }, { settings: rendering, mapDir: dir, runtimeDir: dir, runDir: dir }, layout);
  for (const [file, content] of Object.entries(rendered.maps)) await writeFile(path.join(dir, file), mapText(content));
  const certificate = await generateSelfSigned();
  await writeFile(path.join(dir, 'default.pem'), certificate.chainPem + certificate.keyPem);
  await writeFile(path.join(dir, CRT_LIST), `${path.join(dir, 'default.pem')}\n`);
  await writeFile(path.join(dir, ACME_MAP), '');
  await writeFile(path.join(dir, 'haproxy.cfg'), rendered.config);
  const check = await run('haproxy', ['-c', '-f', path.join(dir, 'haproxy.cfg')]).catch((error: { stderr: string }) => ({ stderr: error.stderr, failed: true }));
  expect('failed' in check ? check.stderr.slice(0, 2000) : '').toBe('');
  expect(services.size).toBeGreaterThan(50);
  expect(rendered.config).toMatch(/^backend tg_/m);
});

const dns = new TestDnsServer();
let proxy: TestProxy;

beforeAll(async () => {
  proxy = await startTestProxy({ plane: 'haproxy', dnsServer: await dns.start() });
});

afterAll(async () => {
  await proxy?.stop();
  await dns.stop();
});

test('through the real API, generated requests never get a 5xx and always a JSON body', async () => {
  await fc.assert(
    fc.asyncProperty(paramsArbitrary, async (params) => {
      const reply = await proxy.api('reconfigure', params);
      expect(reply.status, reply.text).toBeLessThan(500);
      expect(reply.body).toHaveProperty('Status');
    }),
    { numRuns: 150 },
  );
  const config = await proxy.api('config');
  expect(config.status).toBe(200);
}, 120_000);
