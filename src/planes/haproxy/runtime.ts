/**
 * HAProxy's runtime API (the worker's admin socket) and master CLI, spoken over unix sockets in
 * non-interactive mode: one command per connection, the answer ends when HAProxy closes it.
 */
import net from 'node:net';

export class RuntimeApiError extends Error {}

export function runtimeCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return exchange(socketPath, `${command}\n`, timeoutMs, true);
}

/** Sends `input` and collects everything HAProxy says until it closes the connection. */
function exchange(socketPath: string, input: string, timeoutMs: number, endInput: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () => socket.destroy(new RuntimeApiError(`no answer from ${socketPath} within ${timeoutMs} ms`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    if (endInput) socket.end(input);
    else socket.write(input);
  });
}

const PROMPT = '\n> ';

/**
 * Runs `commands` in order over one connection in interactive mode (HAProxy answers each
 * command followed by a prompt), and returns each command's answer. A command with a payload
 * ends with `<<` and its lines, and is followed by an empty line here.
 */
export function runtimeBatch(socketPath: string, commands: readonly string[], timeoutMs = 10_000 + commands.length): Promise<string[]> {
  if (commands.length === 0) return Promise.resolve([]);
  // The input is not ended: in interactive mode HAProxy stops at the end of its input, and
  // would drop commands still buffered; `quit` closes the connection once all are answered.
  const input = `prompt\n${commands.map((c) => (c.includes('\n') ? `${c}\n` : c)).join('\n')}\nquit\n`;
  return exchange(socketPath, input, timeoutMs, false).then((text) => {
    // The first answer is the prompt command's (empty); the last prompt is quit's.
    const answers = text.split(PROMPT).slice(1, commands.length + 1).map((answer) => answer.replace(/^(?:\+ )+/, '').trim());
    if (answers.length !== commands.length) throw new RuntimeApiError(`HAProxy answered ${answers.length} of ${commands.length} commands: ${text.slice(-300)}`);
    return answers;
  });
}

/** HAProxy's CLI reads one buffer per command; payloads are sent in pieces below this size. */
const MAX_PAYLOAD = 8000;

/**
 * Replaces the whole content of a loaded map atomically: a new version is prepared, filled,
 * then committed, so requests see either the old or the new map, never a mix.
 */
export async function replaceMap(socketPath: string, mapFile: string, content: string): Promise<void> {
  const prepared = await runtimeCommand(socketPath, `prepare map ${mapFile}`);
  const version = /New version created: (\d+)/.exec(prepared)?.[1];
  if (version === undefined) throw new RuntimeApiError(`prepare map ${mapFile}: ${prepared.trim()}`);
  for (const payload of splitLines(content, MAX_PAYLOAD)) {
    const answer = await runtimeCommand(socketPath, `add map @${version} ${mapFile} <<\n${payload}`);
    if (answer.trim() !== '') throw new RuntimeApiError(`add map ${mapFile}: ${answer.trim()}`);
  }
  const committed = await runtimeCommand(socketPath, `commit map @${version} ${mapFile}`);
  if (committed.trim() !== '') throw new RuntimeApiError(`commit map ${mapFile}: ${committed.trim()}`);
}

function splitLines(content: string, maxLength: number): string[] {
  const pieces: string[] = [];
  let current = '';
  for (const line of content.split('\n')) {
    if (line === '') continue;
    if (current.length + line.length + 1 > maxLength && current !== '') {
      pieces.push(current);
      current = '';
    }
    current += `${line}\n`;
  }
  if (current !== '') pieces.push(current);
  return pieces;
}

export interface ProcessList {
  readonly masterReloads: number;
  readonly failedReloads: number;
  /** Worker pids, current first, each with the number of reloads it has lived through (0 = current). */
  readonly workers: readonly { pid: number; reloads: number }[];
}

/** Parses the master CLI's `show proc`. */
export function parseShowProc(text: string): ProcessList {
  const master = /^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]/m.exec(text);
  if (master === null) throw new RuntimeApiError(`unexpected 'show proc' answer: ${text.slice(0, 200)}`);
  const workers = [...text.matchAll(/^(\d+)\s+worker\s+(\d+)/gm)].map((m) => ({ pid: Number(m[1]), reloads: Number(m[2]) }));
  return { masterReloads: Number(master[1]), failedReloads: Number(master[2]), workers };
}
