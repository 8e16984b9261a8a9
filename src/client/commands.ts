/**
 * The client commands (routes, reconfigure, remove, status, help) against the control API of a
 * running proxy. Each returns its exit code (docs/cli.md); none calls process.exit.
 */
import { apiAddress, apiGet, Unreachable } from './api.js';
import type { ApiReply } from './api.js';
import { COMMAND_HELP, COMMANDS, GENERAL_HELP } from './help.js';
import type { Command } from './help.js';
import { parseInvocation, UsageError } from './options.js';
import type { Connection, Env } from './options.js';
import { formatTable } from './table.js';

const EXIT_OK = 0;
const EXIT_REFUSED = 1;
const EXIT_USAGE = 2;
const EXIT_UNREACHABLE = 3;

interface Args {
  readonly json: boolean;
  readonly positionals: readonly string[];
  readonly connection: Connection;
}

const RUN: Readonly<Record<Command, (args: Args) => Promise<number>>> = { routes, reconfigure, remove, status };

function isCommand(word: string): word is Command {
  return (COMMANDS as readonly string[]).includes(word);
}

/** `argv`: the command name, then its arguments. */
export async function runClient(argv: readonly string[], env: Env): Promise<number> {
  const [name = 'help', ...args] = argv;
  // `flow-proxy routes | head` closes the pipe early: the reader is done, not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  try {
    if (name === 'help') return help(args);
    if (!isCommand(name)) {
      throw new UsageError(`unknown command ${JSON.stringify(name.slice(0, 80))}; the commands are ${COMMANDS.join(', ')}, listener and help, and with none (only options) flow-proxy runs the proxy`);
    }
    const invocation = parseInvocation(args, env);
    if (invocation.help) {
      write(COMMAND_HELP[name]);
      return EXIT_OK;
    }
    return await RUN[name](invocation);
  } catch (error) {
    if (error instanceof UsageError) {
      const prefix = isCommand(name) || name === 'help' ? `flow-proxy ${name}` : 'flow-proxy';
      process.stderr.write(`${prefix}: ${error.message} (see flow-proxy ${isCommand(name) ? `${name} --help` : 'help'})\n`);
      return EXIT_USAGE;
    }
    if (error instanceof Unreachable) {
      process.stderr.write(`flow-proxy ${name}: ${error.message}\n`);
      return EXIT_UNREACHABLE;
    }
    throw error;
  }
}

function help(args: readonly string[]): number {
  const [topic, ...rest] = args;
  if (topic === undefined) {
    write(GENERAL_HELP);
    return EXIT_OK;
  }
  if (!isCommand(topic) || rest.length > 0) throw new UsageError(`no help for ${JSON.stringify(args.join(' ').slice(0, 80))}; ask for one of ${COMMANDS.join(', ')}`);
  write(COMMAND_HELP[topic]);
  return EXIT_OK;
}

async function routes({ json, positionals, connection }: Args): Promise<number> {
  noArguments(positionals);
  const reply = await apiGet(connection, 'config', new URLSearchParams({ type: 'json' }));
  if (!answered(reply)) return refused('routes', reply, json, connection);
  const rows = routeRows(reply.json);
  if (rows === undefined) return unexpected('routes', reply, connection);
  if (json) writeJson(reply.json);
  else write(rows.length === 0 ? 'no services are routed' : formatTable(rows, ['SERVICE', 'SOURCE', 'PATHS', 'DOMAINS', 'PORT', 'ADDRESS-MODE']));
  return EXIT_OK;
}

/** One row per destination of each service, by service name and destination index; undefined if the reply has another shape. */
function routeRows(body: unknown): string[][] | undefined {
  const services = record(body);
  if (services === undefined) return undefined;
  const rows: string[][] = [];
  for (const name of Object.keys(services).sort()) {
    const service = record(services[name]);
    const destinations = service?.ServiceDest;
    if (service === undefined || !Array.isArray(destinations)) return undefined;
    const ordered = destinations.map(record).sort((a, b) => Number(a?.Index) - Number(b?.Index));
    for (const destination of ordered) {
      if (destination === undefined) return undefined;
      rows.push([
        name,
        text(service.Source) || '-',
        strings(destination.ServicePath).join(',') || '-',
        strings(destination.ServiceDomain).join(',') || '-',
        text(destination.Port) || '-',
        // Empty: the service follows the proxy's --address-mode.
        text(service.AddressMode) || 'default',
      ]);
    }
  }
  return rows;
}

async function reconfigure({ json, positionals, connection }: Args): Promise<number> {
  if (positionals.length === 0) throw new UsageError('give the parameters of the service as KEY=VALUE, such as serviceName=go-demo servicePath=/demo port=8080');
  const query = new URLSearchParams();
  for (const argument of positionals) {
    const equals = argument.indexOf('=');
    if (equals <= 0) throw new UsageError(`expected KEY=VALUE, such as servicePath=/demo, got ${JSON.stringify(argument.slice(0, 80))}`);
    const key = argument.slice(0, equals);
    // The API refuses a parameter given twice; say how to write what was meant.
    if (query.has(key)) {
      throw new UsageError(`${key} is given twice; give each KEY once: lists are comma-separated (serviceDomain=a.com,b.com), further destinations are indexed (servicePath.1=/admin port.1=9090)`);
    }
    query.append(key, argument.slice(equals + 1));
  }
  const reply = await apiGet(connection, 'reconfigure', query);
  if (!accepted(reply)) return refused('reconfigure', reply, json, connection);
  if (json) {
    writeJson(reply.json);
    return EXIT_OK;
  }
  const body = record(reply.json);
  const destinations = Array.isArray(body?.ServiceDest) ? body.ServiceDest.map(record) : [];
  const routesText = destinations.map((d) => (d === undefined ? '' : destinationText(d))).filter((t) => t !== '');
  write(`reconfigured ${text(body?.ServiceName)}${routesText.length === 0 ? '' : `: ${routesText.join('; ')}`}`);
  return EXIT_OK;
}

function destinationText(destination: Readonly<Record<string, unknown>>): string {
  const where = [strings(destination.ServiceDomain).join(','), strings(destination.ServicePath).join(',')].filter((s) => s !== '').join(' ');
  const port = `port ${text(destination.Port)}`;
  return where === '' ? port : `${where} -> ${port}`;
}

async function remove({ json, positionals, connection }: Args): Promise<number> {
  const [name, ...more] = positionals;
  if (name === undefined) throw new UsageError('give the name of the service to stop routing, such as flow-proxy remove go-demo');
  if (more.length > 0) throw new UsageError(`remove takes one service name, got ${positionals.length}`);
  const reply = await apiGet(connection, 'remove', new URLSearchParams({ serviceName: name }));
  if (!accepted(reply)) return refused('remove', reply, json, connection);
  if (json) writeJson(reply.json);
  else write(`removed ${name}`);
  return EXIT_OK;
}

async function status({ json, positionals, connection }: Args): Promise<number> {
  noArguments(positionals);
  const reply = await apiGet(connection, 'status');
  // 503 is the API's answer for a plane that does not serve: still a state to show.
  if (reply.status !== 200 && reply.status !== 503) return refused('status', reply, json, connection);
  const body = record(reply.json);
  const plane = record(body?.Plane);
  if (plane === undefined) return unexpected('status', reply, connection);
  const caughtUp = record(body?.Replicas)?.CaughtUp !== false;
  const ready = plane.ready === true && caughtUp;
  if (json) {
    writeJson(reply.json);
  } else {
    const rows = [
      ['plane', text(plane.kind)],
      ['ready', ready ? 'yes' : 'no'],
      ['caughtUp', caughtUp ? 'yes' : 'no'],
      ['version', text(plane.version)],
      ...(typeof plane.lastError === 'string' ? [['lastError', plane.lastError]] : []),
      ...Object.entries(record(plane.details) ?? {}).map(([key, value]) => [key, text(value)]),
    ];
    write(formatTable(rows));
  }
  if (ready) return EXIT_OK;
  const why =
    plane.ready !== true
      ? `the data plane is not ready${text(body?.Message) === '' ? '' : `: ${text(body?.Message)}`}`
      : 'the proxy is still catching up with its other replicas (it has not got their routes yet)';
  process.stderr.write(`flow-proxy status: ${why}\n`);
  return EXIT_REFUSED;
}

function noArguments(positionals: readonly string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0]?.slice(0, 80))}`);
}

/** A JSON answer with a success status. */
function answered(reply: ApiReply): boolean {
  return reply.status >= 200 && reply.status < 300 && reply.json !== undefined;
}

/** A change request the proxy made: Docker Flow Proxy's Status OK. */
function accepted(reply: ApiReply): boolean {
  return answered(reply) && record(reply.json)?.Status === 'OK';
}

function refused(command: Command, reply: ApiReply, json: boolean, connection: Connection): number {
  if (json && reply.json !== undefined) writeJson(reply.json);
  const message = text(record(reply.json)?.Message);
  if (message === '') return unexpected(command, reply, connection);
  const hint =
    reply.status === 401 ? '; give the CLI the proxy\'s credentials: --api-token or API_TOKEN (or --api-user/--api-pass, API_USER/API_PASS)' : '';
  process.stderr.write(`flow-proxy ${command}: the proxy refused the request (${reply.status}): ${message}${hint}\n`);
  return EXIT_REFUSED;
}

function unexpected(command: Command, reply: ApiReply, connection: Connection): number {
  process.stderr.write(
    `flow-proxy ${command}: ${apiAddress(connection)} answered HTTP ${reply.status}, but not as the Flow Proxy API does${excerpt(reply.text)}; check --api (FLOW_PROXY_API)\n`,
  );
  return EXIT_REFUSED;
}

/** The start of a body, on one line, for messages. */
function excerpt(body: string): string {
  const line = body.replace(/\s+/g, ' ').trim();
  return line === '' ? '' : `: ${JSON.stringify(line.length > 200 ? `${line.slice(0, 200)}...` : line)}`;
}

function record(value: unknown): Readonly<Record<string, unknown>> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function text(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : '';
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function write(output: string): void {
  process.stdout.write(output.endsWith('\n') ? output : `${output}\n`);
}

function writeJson(value: unknown): void {
  write(JSON.stringify(value, null, 2));
}
