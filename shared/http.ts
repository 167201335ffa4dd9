/** Small HTTP helpers shared by the programs' APIs: bounded bodies, safe JSON, paths, tokens. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BadRequest, ClientGone, PayloadTooLarge } from './errors.js';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;
/** Deeper JSON than this is refused: no legitimate API body nests so far, and deep values break tools. */
export const MAX_JSON_DEPTH = 32;

/** Reads a request body up to `limit` bytes; a larger one is refused with 413 before it is buffered. */
export async function readBody(req: IncomingMessage, limit = DEFAULT_BODY_LIMIT): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new PayloadTooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) throw new PayloadTooLarge(limit);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    // node:http's 'aborted' (ECONNRESET): the client hung up in the middle of its body.
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') throw new ClientGone('the client hung up while sending its request');
    throw err;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Depth of nesting of a JSON text, counted without parsing it (so hostile depth costs nothing). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) max = Math.max(max, ++depth);
    else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
  return max;
}

/** Parses a JSON request body that must be an object; anything else is a clear 400. */
export function parseJsonObject(text: string, what = 'request body'): Record<string, unknown> {
  if (text.trim() === '') throw new BadRequest(`${what} is empty; send a JSON object`);
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw new BadRequest(`${what} nests deeper than ${MAX_JSON_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BadRequest(`${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadRequest(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

/** Decodes a URL path component, mapping malformed escapes to a 400 instead of a URIError. */
export function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    throw new BadRequest(`malformed percent-encoding in path ${JSON.stringify(path.slice(0, 200))}`);
  }
}

/**
 * `Authorization: token <t>` (CHP's and tmpnb's scheme) or `Bearer <t>`, compared in constant time.
 * Without an expected token nothing passes: an API is never open by default.
 */
export function hasToken(req: IncomingMessage, expected: string | undefined): boolean {
  if (!expected) return false;
  const header = req.headers.authorization ?? '';
  const match = /^(?:token|bearer)\s+(.+)$/i.exec(header.trim());
  if (!match) return false;
  // Hashing first gives equal lengths, so the comparison takes the same time whatever was sent.
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(match[1]!), digest(expected));
}
