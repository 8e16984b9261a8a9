/**
 * Flags and environment of the client commands: where the control API is and how to
 * authenticate, with the variable names the proxy itself reads (API_TOKEN, API_USER, API_PASS).
 */
import { parseArgs } from 'node:util';

/** A mistake in the command line or environment (exit code 2). */
export class UsageError extends Error {}

export type Env = Readonly<Record<string, string | undefined>>;

export interface Connection {
  /** Base URL of the control API, as given (http://127.0.0.1:$API_PORT, or :8080, by default). */
  readonly api: URL;
  /** Value of the Authorization header, if credentials were given. */
  readonly authorization: string | undefined;
  readonly timeoutMs: number;
}

export type Invocation =
  | { readonly help: true }
  | { readonly help: false; readonly json: boolean; readonly positionals: readonly string[]; readonly connection: Connection };

const DEFAULT_TIMEOUT_SECONDS = 30;

const OPTIONS = {
  api: { type: 'string' },
  'api-token': { type: 'string' },
  'api-user': { type: 'string' },
  'api-pass': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface Setting {
  readonly value: string;
  /** The flag or variable it came from, for messages. */
  readonly name: string;
  readonly fromFlag: boolean;
}

/** Parses the arguments after the command name; throws UsageError. */
export function parseInvocation(args: readonly string[], env: Env): Invocation {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: OPTIONS, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values: flags, positionals } = parsed;
  if (flags.help === true) return { help: true };
  const read = (flag: 'api' | 'api-token' | 'api-user' | 'api-pass', variable: string): Setting | undefined => {
    const given = flags[flag];
    if (typeof given === 'string') return { value: given, name: `--${flag}`, fromFlag: true };
    const fromEnv = env[variable];
    return fromEnv === undefined || fromEnv === '' ? undefined : { value: fromEnv, name: variable, fromFlag: false };
  };
  const api = read('api', 'FLOW_PROXY_API');
  return {
    help: false,
    json: flags.json === true,
    positionals,
    connection: {
      // Inside the proxy's container (its HEALTHCHECK) the API is on the proxy's own API_PORT.
      api: api === undefined ? new URL(`http://127.0.0.1:${/^[0-9]{1,5}$/.test(env.API_PORT ?? '') ? env.API_PORT : '8080'}`) : apiUrl(api),
      authorization: authorization(read('api-token', 'API_TOKEN'), read('api-user', 'API_USER'), read('api-pass', 'API_PASS')),
      timeoutMs: (flags.timeout === undefined ? DEFAULT_TIMEOUT_SECONDS : seconds(flags.timeout)) * 1000,
    },
  };
}

function apiUrl(setting: Setting): URL {
  const invalid = (why: string) => new UsageError(`invalid ${setting.name}: ${why}, got ${JSON.stringify(setting.value.slice(0, 200))}`);
  let url: URL;
  try {
    url = new URL(setting.value);
  } catch {
    throw invalid('the http:// or https:// URL of the control API, such as http://127.0.0.1:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('the http:// or https:// URL of the control API, such as http://127.0.0.1:8080');
  if (url.username !== '' || url.password !== '') throw invalid('give credentials with --api-user/--api-pass or --api-token, not in the URL');
  if (url.search !== '' || url.hash !== '') throw invalid('the URL takes no query or fragment');
  return url;
}

function seconds(raw: string): number {
  if (!/^[0-9]{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > 3600) {
    throw new UsageError(`invalid --timeout: a whole number of seconds between 1 and 3600, got ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return Number(raw);
}

/**
 * A flag beats an environment variable; from the same place, the token beats basic credentials.
 * So `--api-user ops` with API_PASS in the environment sends basic auth even if API_TOKEN is set.
 */
function authorization(token: Setting | undefined, user: Setting | undefined, pass: Setting | undefined): string | undefined {
  const basicFromFlag = user?.fromFlag === true || pass?.fromFlag === true;
  if (token !== undefined && (token.fromFlag || !basicFromFlag)) {
    // Anything else could not be sent in a header (and the proxy takes no other token).
    if (!/^[\x21-\x7e]+$/.test(token.value)) throw new UsageError(`invalid ${token.name}: the proxy's API token, printable characters without spaces`);
    return `Bearer ${token.value}`;
  }
  if (user === undefined && pass === undefined) return undefined;
  if (user === undefined || pass === undefined) {
    throw new UsageError('basic auth needs both --api-user (API_USER) and --api-pass (API_PASS)');
  }
  if (user.value.includes(':')) throw new UsageError(`invalid ${user.name}: a user name cannot contain ":"`);
  return `Basic ${Buffer.from(`${user.value}:${pass.value}`, 'utf8').toString('base64')}`;
}
