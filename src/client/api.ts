/** GET requests to the control API of a running proxy, with Node's fetch. */
import type { Connection } from './options.js';

export interface ApiReply {
  readonly status: number;
  /** The parsed body, or undefined when it is not JSON. */
  readonly json: unknown;
  readonly text: string;
}

/** No HTTP answer from the address (exit code 3); the message names the address and why. */
export class Unreachable extends Error {}

/** The API's address for messages: what was given, without a trailing slash. */
export function apiAddress(connection: Connection): string {
  return `${connection.api.origin}${connection.api.pathname.replace(/\/+$/, '')}`;
}

function endpointUrl(connection: Connection, endpoint: string, query?: URLSearchParams): URL {
  const url = new URL(`${connection.api.pathname.replace(/\/+$/, '')}/v1/docker-flow-proxy/${endpoint}`, connection.api);
  if (query !== undefined) url.search = query.toString();
  return url;
}

export async function apiGet(connection: Connection, endpoint: string, query?: URLSearchParams): Promise<ApiReply> {
  const url = endpointUrl(connection, endpoint, query);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (connection.authorization !== undefined) headers.authorization = connection.authorization;
  let status: number;
  let text: string;
  try {
    // A redirect would carry the credentials elsewhere: it is reported as a refusal instead.
    const response = await fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(connection.timeoutMs) });
    status = response.status;
    text = await response.text();
  } catch (error) {
    throw new Unreachable(`cannot reach the proxy at ${apiAddress(connection)}: ${reason(error, connection.timeoutMs)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status, json, text };
}

function reason(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${timeoutMs / 1000} s (--timeout)`;
  const cause = error instanceof Error ? error.cause : undefined;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : undefined;
  if (code === 'ECONNREFUSED') return 'connection refused; is the proxy running, with its API on this port? (--api, FLOW_PROXY_API)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'unknown host name (--api, FLOW_PROXY_API)';
  if (cause instanceof Error) return code === undefined ? cause.message : `${cause.message} (${code})`;
  return error instanceof Error ? error.message : String(error);
}
