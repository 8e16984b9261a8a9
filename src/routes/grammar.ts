/**
 * The strict grammar of every value that may reach generated configuration. This is the
 * security boundary: a value accepted here cannot contain whitespace, quotes, '#', '%[' or
 * any other character that HAProxy's configuration or map syntax gives a meaning to.
 */

import { isIP } from 'node:net';

export class InvalidValue extends Error {}

/**
 * Docker service names: letters, digits, '_', '.', '-'; at most 63 characters. The name is also
 * a DNS name (NAME, tasks.NAME), so dots must separate non-empty labels.
 */
const SERVICE_NAME = /^(?=.{1,63}$)[a-zA-Z0-9][a-zA-Z0-9_-]*(?:\.[a-zA-Z0-9_-]+)*$/;

export function parseServiceName(raw: string): string {
  if (!SERVICE_NAME.test(raw)) {
    throw new InvalidValue(
      `must be a Docker service name (1-63 letters, digits, '_', '.' or '-', starting with a letter or digit, dots only between other characters), got ${quote(raw)}`,
    );
  }
  return raw;
}

/** serviceGroup: a service name's grammar, since it is written into HAProxy backend names the same way. */
export function parseGroupName(raw: string): string {
  if (!SERVICE_NAME.test(raw)) {
    throw new InvalidValue(
      `must be a group name (1-63 letters, digits, '_', '.' or '-', starting with a letter or digit, dots only between other characters), got ${quote(raw)}`,
    );
  }
  return raw;
}

export function parsePort(raw: string): number {
  if (!/^[0-9]{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) {
    throw new InvalidValue(`must be a TCP port number between 1 and 65535, got ${quote(raw)}`);
  }
  return Number(raw);
}

/** Whole seconds, as Docker Flow Proxy's timeout parameters; HAProxy timers stop at about 24 days. */
export function parseSeconds(raw: string, max = 86_400): number {
  if (!/^[0-9]{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw new InvalidValue(`must be a whole number of seconds between 1 and ${max}, got ${quote(raw)}`);
  }
  return Number(raw);
}

/** A count from 1 to `max` (health check thresholds). */
export function parseCount(raw: string, max: number): number {
  if (!/^[0-9]{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw new InvalidValue(`must be a whole number between 1 and ${max}, got ${quote(raw)}`);
  return Number(raw);
}

const MAX_PATH_LENGTH = 1024;
/** RFC 3986 path characters except ',' (our list separator) and '\'' (quoting); '%' only as %XX. */
const PATH = /^\/(?:[A-Za-z0-9\-._~!$&()*+;=:@/]|%[0-9A-Fa-f]{2})*$/;

export function parsePath(raw: string): string {
  if (raw.length > MAX_PATH_LENGTH) throw new InvalidValue(`must be at most ${MAX_PATH_LENGTH} characters long`);
  if (!raw.startsWith('/')) throw new InvalidValue(`must start with '/', got ${quote(raw)}; send a path prefix such as /demo`);
  if (!PATH.test(raw)) {
    throw new InvalidValue(
      `${quote(raw)} is not a valid URL path prefix: use letters, digits, '/', '-', '.', '_', '~' and RFC 3986 punctuation, with '%' only as a %XX escape (no spaces, quotes, '#', '?' or control characters)`,
    );
  }
  return raw;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A host name, lower-cased, optionally `*.` + host name for every sub-domain. */
export function parseDomain(raw: string): string {
  const lower = raw.toLowerCase();
  const host = lower.startsWith('*.') ? lower.slice(2) : lower;
  const labels = host.split('.');
  if (host.length === 0 || host.length > 253 || !labels.every((label) => LABEL.test(label))) {
    throw new InvalidValue(
      `${quote(raw)} is not a valid domain: use a host name such as example.com or a wildcard such as *.example.com (no port, scheme, path or spaces)`,
    );
  }
  return lower;
}

/** Splits a Docker Flow Proxy comma-separated list; empty items are an error, not silently dropped. */
export function parseList<T>(raw: string, parseItem: (item: string) => T): T[] {
  const items = raw.split(',').map((item) => item.replace(/^ +| +$/g, ''));
  if (items.some((item) => item.length === 0)) {
    throw new InvalidValue(`is a comma-separated list and must not contain empty items, got ${quote(raw)}`);
  }
  return items.map(parseItem);
}

/** Header names: an HTTP token restricted to letters, digits, '_', '.' and '-'. */
const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export function parseHeaderName(raw: string): string {
  if (!HEADER_NAME.test(raw)) {
    throw new InvalidValue(`header names are 1-100 letters, digits, '_', '.' or '-', got ${quote(raw)}`);
  }
  return raw;
}

/**
 * "Name value" (Docker Flow Proxy's form for addReqHeader and the like). The value is literal
 * text: printable ASCII without the single quote, at most 1000 characters. Docker Flow Proxy
 * passed it to HAProxy as is, so `%[...]` fetches and `if` conditions ran; here they are refused,
 * since they would let a label write HAProxy logic.
 */
export function parseHeaderField(raw: string): { name: string; value: string } {
  const space = raw.indexOf(' ');
  if (space === -1) throw new InvalidValue(`takes "Name value" items separated by commas, got ${quote(raw)}`);
  const name = parseHeaderName(raw.slice(0, space).replace(/:$/, ''));
  const value = raw.slice(space + 1).replace(/^ +/, '');
  if (!/^[\x20-\x26\x28-\x7e]{1,1000}$/.test(value)) {
    throw new InvalidValue(`header values are 1-1000 printable ASCII characters without "'", got ${quote(value)}`);
  }
  if (value.includes('%[') || /(?:^| )(?:if|unless) /.test(value)) {
    throw new InvalidValue(`header values are literal text: HAProxy fetches (%[...]) and conditions (if/unless) are not accepted, got ${quote(value)}`);
  }
  return { name, value };
}

const USER_NAME = /^[A-Za-z0-9_.@-]{1,64}$/;
/** crypt(3) hashes both planes verify: SHA-256/512-crypt and bcrypt. */
const PASSWORD_HASH = /^(?:\$[56]\$(?:rounds=[0-9]{1,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{43,86}|\$2[aby]\$[0-9]{2}\$[./0-9A-Za-z]{53})$/;

/**
 * "user:password,user:password" (Docker Flow Proxy's users and USERS). With `hashed`, each
 * password is a crypt(3) hash (mkpasswd -m sha-512, or bcrypt). A password is printable ASCII
 * without ',' (the list separator) or "'", at most 200 characters.
 */
export function parseCredentials(raw: string, hashed: boolean): { user: string; password: string; hashed: boolean }[] {
  const credentials = raw.split(',').map((item) => {
    const colon = item.indexOf(':');
    const user = item.slice(0, colon);
    const password = item.slice(colon + 1);
    if (colon <= 0 || !USER_NAME.test(user)) {
      throw new InvalidValue(`takes user:password items separated by commas; user names are 1-64 letters, digits, '_', '.', '@' or '-' (item ${quote(user === '' ? item.slice(0, 8) : user)})`);
    }
    if (hashed ? !PASSWORD_HASH.test(password) : !/^[\x20-\x26\x28-\x7e]{1,200}$/.test(password)) {
      throw new InvalidValue(
        hashed
          ? `the password of ${quote(user)} must be a SHA-512/SHA-256 crypt hash ($6$..., e.g. from mkpasswd -m sha-512) or a bcrypt hash ($2b$...)`
          : `the password of ${quote(user)} must be 1-200 printable ASCII characters without "'" or ','`,
      );
    }
    return { user, password, hashed };
  });
  const users = credentials.map((c) => c.user);
  const repeated = users.find((user, i) => users.indexOf(user) !== i);
  if (repeated !== undefined) throw new InvalidValue(`names user ${quote(repeated)} twice`);
  return credentials;
}

/**
 * "search,replace" pairs separated by ':' (Docker Flow Proxy's reqPathSearchReplace). `search` is
 * a regular expression restricted to path characters ('.' matches any character) with an
 * optional leading '^'; `replace` is literal path text, possibly empty. The restriction keeps the
 * two planes' regular expression engines in agreement and the value out of HAProxy's syntax.
 */
export function parsePathRewrites(raw: string): { search: string; replace: string }[] {
  return raw.split(':').map((pair) => {
    const comma = pair.indexOf(',');
    const search = comma === -1 ? pair : pair.slice(0, comma);
    const replace = comma === -1 ? '' : pair.slice(comma + 1);
    if (comma === -1 || !/^\^?[A-Za-z0-9/_~.-]{1,200}$/.test(search) || !/^[A-Za-z0-9/_~.-]{0,200}$/.test(replace)) {
      throw new InvalidValue(
        `takes search,replace pairs separated by ':'; search is letters, digits and / _ ~ . - (with an optional leading ^), replace the same characters or nothing, got ${quote(pair)}`,
      );
    }
    return { search, replace };
  });
}

const CODINGS = ['gzip', 'deflate', 'br'] as const;

/** Space-separated codings (Docker Flow Proxy's compressionAlgo): gzip, deflate, and br (brotli, built-in plane only). */
export function parseCompressionAlgos(raw: string): (typeof CODINGS)[number][] {
  const algos = raw.split(' ').filter((item) => item !== '');
  if (algos.length === 0) throw new InvalidValue('needs gzip, deflate or br, space-separated');
  for (const algo of algos) {
    if (!(CODINGS as readonly string[]).includes(algo)) throw new InvalidValue(`supports gzip, deflate and br, got ${quote(algo)}`);
  }
  return [...new Set(algos as (typeof CODINGS)[number][])];
}

/** Space-separated MIME types (Docker Flow Proxy's compressionType), e.g. "text/html text/css". */
export function parseMimeTypes(raw: string): string[] {
  const types = raw.split(' ').filter((item) => item !== '');
  if (types.length === 0 || !types.every((type) => /^[a-z0-9][a-z0-9.+-]*\/[a-z0-9*][a-z0-9.+*-]*$/i.test(type))) {
    throw new InvalidValue(`takes space-separated MIME types such as "text/html text/css application/json", got ${quote(raw)}`);
  }
  return types;
}

/** HTTP method names, as sent (upper case). */
export function parseMethod(raw: string): string {
  if (!/^[A-Z]{1,20}$/.test(raw)) throw new InvalidValue(`methods are upper-case names such as GET or DELETE, got ${quote(raw)}`);
  return raw;
}

/**
 * "Name:value" (Docker Flow Proxy's serviceHeader items). The value is matched literally; it is
 * printable ASCII without quotes, '\\', '#', '{', '}' or ',', at most 200 characters.
 */
export function parseHeaderCondition(raw: string): { name: string; value: string } {
  const colon = raw.indexOf(':');
  if (colon === -1) throw new InvalidValue(`takes Name:value items separated by commas, got ${quote(raw)}`);
  const name = parseHeaderName(raw.slice(0, colon).trim());
  const value = raw.slice(colon + 1).trim();
  if (!CONDITION_TEXT.test(value)) throw new InvalidValue(`the value of ${name} must be 1-200 printable ASCII characters without quotes, '\\', '#', '{' or '}', got ${quote(value)}`);
  return { name, value };
}

// No quotes, '\\', '#', '{' or '}': HAProxy ends an inline ACL at a '}' word even when quoted.
const CONDITION_TEXT = /^[\x20\x21\x24-\x26\x28-\x5b\x5d-\x7a\x7c\x7e]{1,200}$/;

/** A User-Agent fragment (userAgent items): printable ASCII without quotes, '\\', '#', '{' or '}'. */
export function parseUserAgent(raw: string): string {
  if (!CONDITION_TEXT.test(raw)) throw new InvalidValue(`user agents are 1-200 printable ASCII characters without quotes, '\\', '#', '{' or '}', got ${quote(raw)}`);
  return raw;
}

/** An IPv4 or IPv6 address or CIDR range, as written for HAProxy's ip match (a bare address is one host). */
export function parseCidr(raw: string): string {
  const slash = raw.indexOf('/');
  const address = slash === -1 ? raw : raw.slice(0, slash);
  const version = isIP(address);
  const bits = slash === -1 ? undefined : raw.slice(slash + 1);
  const max = version === 6 ? 128 : 32;
  if (version === 0 || (bits !== undefined && (!/^[0-9]{1,3}$/.test(bits) || Number(bits) > max))) {
    throw new InvalidValue(`takes IPv4 or IPv6 addresses or CIDR ranges such as 10.0.0.0/8 or 2001:db8::/32, got ${quote(raw)}`);
  }
  return raw;
}

/** A balance algorithm, by HAProxy's name. */
export function parseBalance(raw: string): 'roundrobin' | 'leastconn' | 'source' {
  if (raw === 'roundrobin' || raw === 'leastconn' || raw === 'source') return raw;
  throw new InvalidValue(`must be roundrobin, leastconn (fewest requests in flight) or source (a hash of the client's address), got ${quote(raw)}`);
}

/** Keywords that open a section: raw text must stay inside the section it is added to. */
const SECTION_KEYWORDS = /^(?:global|defaults|frontend|backend|listen|userlist|peers|resolvers|cache|program|http-errors|ring|mailers)(?:\s|$)/;

/**
 * Raw HAProxy directives (ALLOW_RAW_HAPROXY): lines separated by line breaks, printable text
 * (no other control character), none opening a new section; at most 4000 characters. They are
 * otherwise unchecked: `haproxy -c` decides.
 */
export function parseRawHaproxy(raw: string): string[] {
  if (raw.length > 4000) throw new InvalidValue('must be at most 4000 characters long');
  const lines = raw.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
  if (lines.length === 0) throw new InvalidValue('holds no directive');
  for (const line of lines) {
    if (/[\0-\x08\x0a-\x1f\x7f\u2028\u2029]/.test(line)) throw new InvalidValue(`directives are printable text, one per line, got ${quote(line)}`);
    if (SECTION_KEYWORDS.test(line)) throw new InvalidValue(`a directive cannot open a new section (${quote(line)}); raw text stays in the section it is added to`);
  }
  return lines;
}

/** Shows a user's value in a message without letting control characters or huge values through. */
export function quote(raw: string): string {
  const shown = raw.length > 80 ? `${raw.slice(0, 80)}...` : raw;
  return JSON.stringify(shown);
}
