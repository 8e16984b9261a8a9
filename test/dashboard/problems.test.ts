/**
 * The problem log: warnings and errors the control plane logs reach the dashboard's bounded
 * buffer, redacted, whatever the log level of stdout; stdout keeps pino's JSON lines.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { PROBLEMS_KEPT, ProblemLog, problemOf } from '../../src/dashboard/problems.js';
import { createLogger, problemLogOf } from '../../src/log.js';

const run = promisify(execFile);

test('warn and above are kept with their fields; info and debug are not', () => {
  const log = createLogger('silent');
  const problems = problemLogOf(log);
  expect(problems).toBeDefined();
  log.info('started');
  log.debug('detail');
  log.child({ addresses: true }).warn({ name: 'tasks.shop', code: 'ECONNREFUSED' }, 'address lookup failed');
  log.error({ reason: 'disk full', service: 'shop' }, 'change not persisted');
  const kept = problems?.entries.entries() ?? [];
  expect(kept.map((p) => [p.level, p.message])).toEqual([
    ['warn', 'address lookup failed'],
    ['error', 'change not persisted'],
  ]);
  expect(kept[0]?.details).toEqual({ addresses: 'true', name: 'tasks.shop', code: 'ECONNREFUSED' });
  expect(kept[1]?.details).toEqual({ reason: 'disk full', service: 'shop' });
  expect(Date.parse(kept[0]?.at ?? '')).toBeGreaterThan(Date.now() - 60_000);
});

test('secrets are masked, credentials in URLs removed, errors reduced to their message', () => {
  const problem = problemOf({
    level: 50,
    time: 0,
    msg: 'notification to http://ops:hunter2@listener:8080/notify failed',
    apiToken: 'abc',
    password: 'hunter2',
    headers: { authorization: 'Bearer abc', accept: '*/*' },
    keyAuthorization: 'token.thumbprint',
    err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at secret/place.js:1' },
    url: 'https://user:pass@example.com/x',
    long: 'y'.repeat(1000),
  });
  expect(problem?.message).toBe('notification to http://listener:8080/notify failed');
  const details = problem?.details ?? {};
  expect(details.apiToken).toBe('[redacted]');
  expect(details.password).toBe('[redacted]');
  expect(details.keyAuthorization).toBe('[redacted]');
  expect(details.headers).toBe('{"authorization":"[redacted]","accept":"*/*"}');
  expect(details.error).toBe('boom');
  expect(details.url).toBe('https://example.com/x');
  expect(details.long?.length).toBeLessThanOrEqual(300);
  expect(JSON.stringify(problem)).not.toMatch(/hunter2|Bearer abc|stack|secret\/place/);
});

test('below warn, or not a log line: nothing kept', () => {
  expect(problemOf({ level: 30, msg: 'info' })).toBeUndefined();
  const problems = new ProblemLog();
  problems.write('not json\n');
  problems.write('42\n');
  problems.write(`${JSON.stringify({ level: 30, msg: 'info' })}\n`);
  expect(problems.entries.entries()).toEqual([]);
});

test('bounded: the newest entries are kept', () => {
  const problems = new ProblemLog();
  for (let i = 0; i < PROBLEMS_KEPT + 25; i++) problems.write(`${JSON.stringify({ level: 40, time: 0, msg: `w${i}` })}\n`);
  const kept = problems.entries.entries();
  expect(kept).toHaveLength(PROBLEMS_KEPT);
  expect(kept.at(-1)?.message).toBe(`w${PROBLEMS_KEPT + 24}`);
});

/**
 * What an operator's log collector sees on stdout, from the built module in a process of its own,
 * next to what plain pino (the logger before the problem log) writes for the same calls on stderr.
 */
async function stdoutOf(level: string): Promise<{ lines: Record<string, unknown>[]; reference: Record<string, unknown>[] }> {
  const script = `
    import { pino } from 'pino';
    import { createLogger } from './dist/log.js';
    const err = new Error('boom');
    const logged = (log) => {
      log.debug('debug line'); log.info({ a: 1 }, 'info line'); log.warn('warn line');
      log.child({ audit: true }).error({ reason: 'x', err }, 'error line');
    };
    logged(createLogger(${JSON.stringify(level)}));
    logged(pino({ level: ${JSON.stringify(level)}, base: { service: 'flow-proxy' } }, pino.destination({ dest: 2, sync: true })));`;
  const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd() });
  const parse = (text: string) =>
    text.trim() === ''
      ? []
      : text.trim().split('\n').map((line) => {
          const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
          expect(typeof time).toBe('number');
          return rest;
        });
  return { lines: parse(stdout), reference: parse(stderr) };
}

test.each(['info', 'error', 'silent', 'debug'])('stdout at level %s: the same JSON lines as before', async (level) => {
  const { lines, reference } = await stdoutOf(level);
  expect(lines).toEqual(reference);
  const expected = { debug: 4, info: 3, error: 1, silent: 0 }[level];
  expect(lines).toHaveLength(expected ?? -1);
});
