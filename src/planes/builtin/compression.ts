/**
 * Response compression on the built-in plane, under the conditions HAProxy 2.6 applies (its
 * `compression` directive): the client accepts the coding, the request is HTTP/1.1 or later and
 * not HEAD, the answer is 200-203 with a body, not already encoded, not `no-transform`, and of a
 * listed type (any type when none is listed). The length goes, Vary gains Accept-Encoding and a
 * strong ETag becomes weak.
 */
import zlib from 'node:zlib';
import type { Compression, CompressionAlgo } from '../../routes/model.js';

export interface CompressionRequest {
  readonly method: string;
  readonly acceptEncoding: string | undefined;
  readonly http11: boolean;
}

/** The coding to apply, or undefined. `headers` is the response's flat [name, value, ...] list. */
export function chooseCoding(rule: Compression, request: CompressionRequest, status: number, headers: readonly string[]): CompressionAlgo | undefined {
  if (!request.http11 || request.method === 'HEAD' || status < 200 || status > 203) return undefined;
  const accepted = acceptedCodings(request.acceptEncoding);
  const coding = rule.algos.find((algo) => accepted.has(algo));
  if (coding === undefined) return undefined;
  let type = '';
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] as string).toLowerCase();
    const value = headers[i + 1] as string;
    if (name === 'content-encoding') return undefined;
    if (name === 'cache-control' && /(?:^|,)\s*no-transform\s*(?:,|$)/i.test(value)) return undefined;
    if (name === 'content-type') type = value.toLowerCase();
  }
  if (rule.types !== undefined && !rule.types.some((listed) => type.startsWith(listed.toLowerCase()))) return undefined;
  return coding;
}

/** Codings the client accepts (q=0 excluded). */
function acceptedCodings(header: string | undefined): Set<string> {
  const accepted = new Set<string>();
  for (const item of (header ?? '').split(',')) {
    const [coding, ...params] = item.trim().toLowerCase().split(';');
    const refused = params.some((p) => /^\s*q\s*=\s*0(?:\.0*)?\s*$/.test(p));
    if (coding !== undefined && coding !== '' && !refused) accepted.add(coding.trim());
  }
  return accepted;
}

/** Rewrites the head of a response about to be compressed with `coding`, in place. */
export function compressedHead(headers: string[], coding: CompressionAlgo): void {
  let vary = false;
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    const name = (headers[i] as string).toLowerCase();
    if (name === 'content-length') headers.splice(i, 2);
    else if (name === 'etag' && !(headers[i + 1] as string).startsWith('W/')) headers[i + 1] = `W/${headers[i + 1] as string}`;
    else if (name === 'vary') {
      vary = true;
      headers[i + 1] = `${headers[i + 1] as string}, Accept-Encoding`;
    }
  }
  if (!vary) headers.push('vary', 'Accept-Encoding');
  headers.push('content-encoding', coding);
}

/** Brotli's default quality (11) costs a proxy far too much CPU per response; 5 is near gzip's cost with smaller output. */
const BROTLI_QUALITY = 5;

export function compressor(coding: CompressionAlgo): zlib.Gzip | zlib.Deflate | zlib.BrotliCompress {
  if (coding === 'br') return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY } });
  return coding === 'gzip' ? zlib.createGzip() : zlib.createDeflate();
}
