/**
 * The client commands of the real binary (dist/cli.js: routes, reconfigure, remove, status)
 * against a real running proxy: tables, --json, credentials and exit codes.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort, startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the binary with only PATH and `env` in its environment, so the caller's API_TOKEN and the like stay out. */
function cli(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['dist/cli.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code as number | null), stdout, stderr });
    });
  });
}

async function routeTable(proxy: TestProxy, authorization?: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/config?type=json`, authorization === undefined ? {} : { headers: { authorization } });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

describe('against an open proxy', () => {
  let proxy: TestProxy;
  const api = () => ['--api', proxy.apiUrl];

  beforeAll(async () => {
    proxy = await startTestProxy({ plane: 'builtin', dnsServer: undefined });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  test('reconfigure adds routes that routes then lists, as a table and as the API JSON', async () => {
    const demo = await cli(['reconfigure', 'serviceName=go-demo', 'servicePath=/demo', 'port=8080', ...api()]);
    expect(demo).toEqual({ code: 0, stdout: 'reconfigured go-demo: /demo -> port 8080\n', stderr: '' });
    const app = await cli(['reconfigure', 'serviceName=app', 'servicePath=/api', 'port=8080', 'servicePath.1=/admin', 'port.1=9090', 'addressMode=tasks', ...api()]);
    expect(app).toEqual({ code: 0, stdout: 'reconfigured app: /api -> port 8080; /admin -> port 9090\n', stderr: '' });
    const shop = await cli(['reconfigure', 'serviceName=shop', 'serviceDomain=shop.example.com,*.shop.example.com', 'port=80', ...api()]);
    expect(shop.stdout).toBe('reconfigured shop: shop.example.com,*.shop.example.com -> port 80\n');
    expect(Object.keys(await routeTable(proxy)).sort()).toEqual(['app', 'go-demo', 'shop']);

    const table = await cli(['routes', ...api()]);
    expect(table.code).toBe(0);
    expect(table.stderr).toBe('');
    expect(table.stdout).toBe(
      [
        'SERVICE  SOURCE  PATHS   DOMAINS                              PORT  ADDRESS-MODE',
        'app      api     /api    -                                    8080  tasks',
        'app      api     /admin  -                                    9090  tasks',
        'go-demo  api     /demo   -                                    8080  default',
        'shop     api     -       shop.example.com,*.shop.example.com  80    default',
        '',
      ].join('\n'),
    );

    const json = await cli(['routes', '--json', ...api()]);
    expect(json.code).toBe(0);
    const listed = JSON.parse(json.stdout) as Record<string, { ServiceDest: { ServicePath: string[]; Port: string }[] }>;
    expect(listed).toEqual(await routeTable(proxy));
    expect(listed['go-demo']?.ServiceDest[0]).toMatchObject({ ServicePath: ['/demo'], Port: '8080' });
  });

  test('reconfigure --json prints the API reply', async () => {
    const run = await cli(['reconfigure', '--json', 'serviceName=json-demo', 'servicePath=/json', 'port=8081', ...api()]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ Status: 'OK', Message: '', ServiceName: 'json-demo', ServiceDest: [{ Port: '8081', ServicePath: ['/json'] }] });
  });

  test('status shows the plane, its table version and its counters, as a table and as JSON', async () => {
    const reply = (await proxy.api('status')).body as { Plane: { version: number; details: Record<string, number> } };
    const table = await cli(['status', ...api()]);
    expect(table.code).toBe(0);
    expect(table.stderr).toBe('');
    expect(table.stdout).toMatch(/^plane +builtin$/m);
    expect(table.stdout).toMatch(/^ready +yes$/m);
    expect(table.stdout).toMatch(new RegExp(`^version +${reply.Plane.version}$`, 'm'));
    for (const [key, value] of Object.entries(reply.Plane.details)) expect(table.stdout).toMatch(new RegExp(`^${key} +${value}$`, 'm'));
    // One column of values: every value starts at the same offset.
    const offsets = table.stdout.trimEnd().split('\n').map((line) => /^\S+ +/.exec(line)?.[0].length);
    expect(new Set(offsets).size).toBe(1);

    const json = await cli(['status', '--json', ...api()]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ Status: 'OK', Plane: { kind: 'builtin', ready: true, version: reply.Plane.version } });
  });

  test('remove stops routing a service', async () => {
    expect((await cli(['reconfigure', 'serviceName=short-lived', 'servicePath=/short', 'port=80', ...api()])).code).toBe(0);
    expect((await cli(['routes', ...api()])).stdout).toMatch(/^short-lived /m);
    const removed = await cli(['remove', 'short-lived', ...api()]);
    expect(removed).toEqual({ code: 0, stdout: 'removed short-lived\n', stderr: '' });
    expect(await routeTable(proxy)).not.toHaveProperty('short-lived');
    expect((await cli(['routes', ...api()])).stdout).not.toMatch(/short-lived/);
    const json = await cli(['remove', '--json', 'short-lived', ...api()]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ Status: 'OK', Message: '', ServiceName: 'short-lived' });
  });

  test('a refused reconfigure exits 1 with the proxy message on stderr, and changes nothing', async () => {
    const before = await routeTable(proxy);
    const run = await cli(['reconfigure', 'serviceName=go-demo', 'servicePath=demo', 'port=9999', ...api()]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      `flow-proxy reconfigure: the proxy refused the request (400): servicePath: must start with '/', got "demo"; send a path prefix such as /demo\n`,
    );
    const json = await cli(['reconfigure', '--json', 'serviceName=go-demo', 'servicePath=demo', 'port=9999', ...api()]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ Status: 'NOK', ServiceName: 'go-demo' });
    expect(json.stderr).toContain("servicePath: must start with '/'");
    const conflict = await cli(['reconfigure', 'serviceName=thief', 'servicePath=/demo', 'port=80', ...api()]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toContain('(409): servicePath /demo is already routed to service go-demo');
    expect(await routeTable(proxy)).toEqual(before);
  });

  test('bad arguments exit 2 with one line, before any request', async () => {
    // A closed port: had the command called it, it would exit 3.
    const nowhere = ['--api', `http://127.0.0.1:${await freePort()}`];
    const cases: [string[], string][] = [
      [['reconfigure', 'serviceName=go-demo', 'servicePath', ...nowhere], 'expected KEY=VALUE, such as servicePath=/demo, got "servicePath"'],
      [['reconfigure', '=x', ...nowhere], 'expected KEY=VALUE'],
      [['reconfigure', ...nowhere], 'give the parameters of the service as KEY=VALUE'],
      [['reconfigure', 'serviceName=a', 'port=1', 'port=2', ...nowhere], 'port is given twice'],
      [['remove', ...nowhere], 'give the name of the service'],
      [['remove', 'a', 'b', ...nowhere], 'remove takes one service name, got 2'],
      [['routes', 'extra', ...nowhere], 'unexpected argument "extra"'],
      [['routes', '--nope', ...nowhere], "Unknown option '--nope'"],
      [['status', '--timeout', 'soon', ...nowhere], 'invalid --timeout'],
      [['status', '--api', 'localhost:8080'], 'invalid --api'],
      [['status', ...nowhere], ''],
      [['frob'], 'unknown command "frob"'],
      [['help', 'frob'], 'flow-proxy help: no help for "frob"; ask for one of routes, reconfigure, remove, status'],
    ];
    for (const [args, message] of cases) {
      const run = await cli(args, { API_TOKEN: 'x'.repeat(20) });
      if (message === '') {
        expect(run.code, 'the closed port is unreachable').toBe(3);
        continue;
      }
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain(message);
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    const basicHalf = await cli(['routes', ...nowhere], { API_USER: 'ops' });
    expect(basicHalf.code).toBe(2);
    expect(basicHalf.stderr).toContain('basic auth needs both --api-user (API_USER) and --api-pass (API_PASS)');
  });

  test('an address where no proxy answers exits 3 with a message naming it', async () => {
    const port = await freePort();
    const refused = await cli(['routes', '--api', `http://127.0.0.1:${port}`]);
    expect(refused.code).toBe(3);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(`flow-proxy routes: cannot reach the proxy at http://127.0.0.1:${port}: connection refused`);

    const fromEnv = await cli(['status'], { FLOW_PROXY_API: `http://127.0.0.1:${port}` });
    expect(fromEnv.code).toBe(3);
    expect(fromEnv.stderr).toContain(`http://127.0.0.1:${port}`);

    // Accepts connections and never answers.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const silentPort = (silent.address() as net.AddressInfo).port;
      const started = Date.now();
      const timedOut = await cli(['status', '--timeout', '1', '--api', `http://127.0.0.1:${silentPort}`]);
      expect(timedOut.code).toBe(3);
      expect(timedOut.stderr).toBe(`flow-proxy status: cannot reach the proxy at http://127.0.0.1:${silentPort}: no answer within 1 s (--timeout)\n`);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('an address that is not the control API exits 1 and says so', async () => {
    const run = await cli(['routes', '--api', proxy.httpUrl]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${proxy.httpUrl} answered HTTP 404, but not as the Flow Proxy API does`);
  });

  test('help and --help describe each command', async () => {
    const general = await cli(['help']);
    expect(general.code).toBe(0);
    for (const word of ['routes', 'reconfigure KEY=VALUE', 'remove NAME', 'status', 'FLOW_PROXY_API', 'API_TOKEN', 'Exit codes']) expect(general.stdout).toContain(word);
    for (const command of ['routes', 'reconfigure', 'remove', 'status']) {
      const flag = await cli([command, '--help']);
      expect(flag.code).toBe(0);
      expect(flag.stdout).toContain(`Usage: flow-proxy ${command}`);
      expect(await cli(['help', command])).toEqual(flag);
    }
    const proxyHelp = await cli(['--help']);
    expect(proxyHelp.stdout).toContain('--data-plane');
    expect(proxyHelp.stdout).toContain('flow-proxy reconfigure KEY=VALUE');
  });
});

describe('against a proxy whose API needs credentials', () => {
  const TOKEN = 'a-long-enough-test-token-0123456789';
  let proxy: TestProxy;
  const api = () => ['--api', proxy.apiUrl];

  beforeAll(async () => {
    proxy = await startTestProxy({ plane: 'builtin', dnsServer: undefined, env: { API_TOKEN: TOKEN, API_USER: 'ops', API_PASS: 'pa:ss word' } });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  test('the token from the environment or a flag is sent', async () => {
    const added = await cli(['reconfigure', 'serviceName=go-demo', 'servicePath=/demo', 'port=8080', ...api()], { API_TOKEN: TOKEN });
    expect(added).toEqual({ code: 0, stdout: 'reconfigured go-demo: /demo -> port 8080\n', stderr: '' });
    const listed = await cli(['routes', ...api()], { API_TOKEN: TOKEN });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^go-demo +api +\/demo +- +8080 +default$/m);
    expect((await cli(['routes', '--api-token', TOKEN, ...api()])).code).toBe(0);
    const fromEnv = await cli(['routes'], { API_TOKEN: TOKEN, FLOW_PROXY_API: proxy.apiUrl });
    expect(fromEnv.stdout).toBe(listed.stdout);
  });

  test('basic credentials are sent, the password from the environment', async () => {
    const run = await cli(['routes', '--json', '--api-user', 'ops', ...api()], { API_PASS: 'pa:ss word', API_TOKEN: 'not-the-token-but-long-enough' });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual(await routeTable(proxy, `Bearer ${TOKEN}`));
  });

  test('without credentials, or with wrong ones, a change exits 1 saying what to set, and changes nothing', async () => {
    const missing = await cli(['reconfigure', 'serviceName=intruder', 'servicePath=/in', 'port=80', ...api()]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toContain('flow-proxy reconfigure: the proxy refused the request (401): this endpoint needs credentials');
    expect(missing.stderr).toContain('--api-token or API_TOKEN');
    const wrong = await cli(['routes', ...api()], { API_TOKEN: `${TOKEN}x` });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('(401): the credentials sent are not valid for this proxy');
    expect((await cli(['remove', 'go-demo', ...api()])).code).toBe(1);
    expect(Object.keys(await routeTable(proxy, `Bearer ${TOKEN}`)).sort()).toEqual(['go-demo']);
  });

  test('status stays open, as the API keeps it for health checks', async () => {
    const run = await cli(['status', ...api()]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^ready +yes$/m);
  });
});

test('status of a plane that does not serve prints its state and exits 1', async () => {
  const proxy = await startTestProxy({ plane: 'builtin', dnsServer: undefined });
  try {
    await proxy.proxy.plane.stop();
    const run = await cli(['status', '--api', proxy.apiUrl]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^ready +no$/m);
    expect(run.stderr).toBe('flow-proxy status: the data plane is not ready\n');
    const json = await cli(['status', '--json', '--api', proxy.apiUrl]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ Status: 'NOK', Plane: { ready: false } });
  } finally {
    await proxy.stop();
  }
});
