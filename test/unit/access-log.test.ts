import { describe, expect, test } from 'vitest';
import { accessLine } from '../../src/logs/access-log.js';
import { LineSplitter, scanAccessLine } from '../../src/planes/haproxy/log-stream.js';

describe('HAProxy access lines', () => {
  test('the service and duration are read from the line HAProxy wrote', () => {
    const line = '{"time":"2026-11-26T07:05:54.289Z","client":"::1","method":"GET","host":"a\\t,\\"service\\":\\"x","path":"\\/x","service":"go-demo","status":200,"duration_ms":12,"bytes_in":48,"bytes_out":73}';
    expect(JSON.parse(line).host).toBe('a\t,"service":"x');
    expect(scanAccessLine(line)).toEqual({ service: 'go-demo', durationMs: 12 });
  });

  test("the proxy's own answers have no service; other output is not an access line", () => {
    expect(scanAccessLine('{"time":"x","client":"::1","method":"GET","host":"-","path":"\\/","service":null,"status":404,"duration_ms":0,"bytes_in":1,"bytes_out":2}')).toEqual({ service: undefined, durationMs: 0 });
    expect(scanAccessLine('[NOTICE]   (4899) : New worker (4902) forked')).toBeUndefined();
    expect(scanAccessLine('{"time":"cut')).toBeUndefined();
  });

  test('a line cut between two chunks is read whole', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line));
    splitter.push('one\ntw');
    splitter.push('o\nthr');
    expect(lines).toEqual(['one', 'two']);
    splitter.push('ee\n');
    expect(lines).toEqual(['one', 'two', 'three']);
  });
});

test('an access line is one JSON object whose strings are escaped', () => {
  const line = accessLine({ time: 0, client: '::1', method: 'GET', host: 'h"\n', path: '/p\\', service: undefined, status: 404, durationMs: 1.23456, bytesIn: 1, bytesOut: 2 });
  expect(line.endsWith('\n')).toBe(true);
  expect(line.trimEnd().includes('\n')).toBe(false);
  expect(JSON.parse(line)).toEqual({ time: '1970-01-01T00:00:00.000Z', client: '::1', method: 'GET', host: 'h"\n', path: '/p\\', service: null, status: 404, duration_ms: 1.235, bytes_in: 1, bytes_out: 2 });
});
