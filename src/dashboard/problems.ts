/**
 * The last warnings and errors the control plane logged, for the dashboard. It receives the same
 * JSON lines pino writes to stdout (log.ts sends it those at warn and above) and keeps a
 * bounded, redacted copy: fields that may hold secrets are masked, credentials in URLs removed,
 * stack traces dropped and long values cut.
 */
import { Ring } from './ring.js';

export const PROBLEMS_KEPT = 100;
const MAX_VALUE_LENGTH = 300;
const MAX_DETAILS = 12;
const LEVELS: Readonly<Record<number, ProblemLevel>> = { 40: 'warn', 50: 'error', 60: 'fatal' };
/** pino's own fields, and the logger's base binding. */
const BOOKKEEPING = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'audit']);
/** Field names that may hold a secret: masked whatever their value. */
const SECRET_KEY = /pass|secret|token|authori[sz]ation|cookie|credential|private|pem|bundle|key/i;

export type ProblemLevel = 'warn' | 'error' | 'fatal';

export interface LoggedProblem {
  /** ISO 8601. */
  readonly at: string;
  readonly level: ProblemLevel;
  readonly message: string;
  /** The entry's other fields as text, e.g. reason, service, name. */
  readonly details: Readonly<Record<string, string>>;
}

function cut(text: string): string {
  const clean = text.replace(/\/\/[^/@\s]*@/g, '//');
  return clean.length > MAX_VALUE_LENGTH ? `${clean.slice(0, MAX_VALUE_LENGTH - 1)}…` : clean;
}

function redactedJson(value: unknown): string {
  return JSON.stringify(value, (key, inner: unknown) => (key !== '' && SECRET_KEY.test(key) ? '[redacted]' : inner)) ?? '';
}

function detailText(key: string, value: unknown): string | undefined {
  if (SECRET_KEY.test(key)) return '[redacted]';
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return cut(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (key === 'err' && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string') {
    return cut((value as { message: string }).message);
  }
  return cut(redactedJson(value));
}

/** A parsed pino line as shown on the dashboard; undefined below warn or when it is not a log entry. */
export function problemOf(record: Readonly<Record<string, unknown>>): LoggedProblem | undefined {
  const level = typeof record.level === 'number' ? LEVELS[record.level] : undefined;
  if (level === undefined) return undefined;
  const details: Record<string, string> = {};
  for (const [key, value] of Object.entries(record)) {
    if (BOOKKEEPING.has(key) || (key === 'service' && value === 'flow-proxy')) continue;
    if (Object.keys(details).length >= MAX_DETAILS) break;
    const text = detailText(key, value);
    if (text !== undefined) details[key === 'err' ? 'error' : key] = text;
  }
  const time = typeof record.time === 'number' ? new Date(record.time) : new Date();
  return { at: time.toISOString(), level, message: typeof record.msg === 'string' ? cut(record.msg) : '', details };
}

/** A pino destination: one JSON line per write. */
export class ProblemLog {
  readonly entries = new Ring<LoggedProblem>(PROBLEMS_KEPT);

  write(line: string): void {
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      return; // not a JSON line: nothing pino writes
    }
    if (typeof record !== 'object' || record === null) return;
    const problem = problemOf(record as Record<string, unknown>);
    if (problem !== undefined) this.entries.push(problem);
  }
}
