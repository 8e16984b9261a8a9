import { pino } from 'pino';
import type { Logger } from 'pino';
import { ProblemLog } from './dashboard/problems.js';

export type { Logger };

const problemLogs = new WeakMap<Logger, ProblemLog>();

/** The lower of `level` and warn: the logger must produce warnings for the problem log even when stdout does not want them. */
function loggerLevel(level: string): string {
  const value = (name: string) => pino.levels.values[name] ?? Number.POSITIVE_INFINITY; // 'silent' has no value
  return value(level) < value('warn') ? level : 'warn';
}

/** stdout as pino's default destination picks it (a test runner may have replaced process.stdout). */
function stdout(): pino.DestinationStream {
  const replaced = process.stdout.write !== Object.getPrototypeOf(process.stdout).write;
  return replaced ? process.stdout : pino.destination({ dest: process.stdout.fd || 1 });
}

/**
 * JSON lines on stdout at `level`. Warnings and errors also go to a small in-memory problem log
 * (the dashboard shows it; see problemLogOf), whatever `level` is.
 */
export function createLogger(level: string): Logger {
  const problems = new ProblemLog();
  const streams = pino.multistream<string>([
    { level, stream: stdout() },
    { level: 'warn', stream: problems },
  ]);
  const logger = pino({ level: loggerLevel(level), base: { service: 'flow-proxy' } }, streams);
  problemLogs.set(logger, problems);
  return logger;
}

/** The problem log of a logger made by createLogger (its children share it); undefined for others. */
export function problemLogOf(log: Logger): ProblemLog | undefined {
  return problemLogs.get(log);
}
