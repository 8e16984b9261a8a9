import { execFile } from 'node:child_process';
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
