import { execFile, spawn } from 'node:child_process';
import { expect, test } from 'vitest';

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['dist/cli.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
    });
  });
}

test('an invalid setting stops start-up with one line naming it', async () => {
  const flag = await cli(['--api-port', 'eighty']);
  expect(flag.code).toBe(2);
  expect(flag.stderr).toBe('flow-proxy: invalid --api-port: must be a whole number between 1 and 65535, got "eighty"\n');
  const env = await cli([], { TIMEOUT_SERVER: 'soon' });
  expect(env.code).toBe(2);
  expect(env.stderr.trim().split('\n')).toHaveLength(1);
  expect(env.stderr).toContain('TIMEOUT_SERVER');
});

test('--help lists the options', async () => {
  const help = await cli(['--help']);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain('--data-plane');
});

test('SIGTERM stops the proxy, which exits on its own with code 0', async () => {
  const { freePort, tempDir } = await import('../support/proxy.js');
  const apiPort = await freePort();
  const args = [
    'dist/cli.js', '--data-plane', 'builtin', '--http-port', String(await freePort()), '--https-port', String(await freePort()),
    '--api-port', String(apiPort), '--api-address', '127.0.0.1', '--bind-address', '127.0.0.1', '--state-dir', await tempDir('cli'),
    '--log-level', 'silent', '--stop-grace', '1',
  ];
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '' }, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://127.0.0.1:${apiPort}/v1/docker-flow-proxy/ping`).then((r) => r.ok, () => false);
    if (up) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const signalled = Date.now();
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(Date.now() - signalled).toBeLessThan(5000);
});
