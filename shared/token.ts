/**
 * The secrets that guard every API that changes state (the proxy's route API, the admin APIs).
 * A token given by flag, environment or config file wins. Without one, a random token is generated
 * and kept in `<state dir>/<name>` (mode 0600; `.nbpool/` under the working directory unless
 * `--state-dir` says otherwise), so a restart, or another program with the same state directory
 * (`nbpool proxy` then `nbpool orchestrator`), finds the same one; the operator reads it there
 * (`cat .nbpool/route-api-token`).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirectories } from './files.js';

/** The proxy's REST API token (CONFIGPROXY_AUTH_TOKEN). */
export const ROUTE_API_TOKEN_FILE = 'route-api-token';
/** The orchestrator's and the redirector's admin token (ADMIN_AUTH_TOKEN). */
export const ADMIN_TOKEN_FILE = 'admin-token';
/** 192 random bits, URL-safe (it goes into the status page link's fragment). */
const TOKEN_BYTES = 24;
const MIN_TOKEN_LENGTH = 22;

export interface Token {
  token: string;
  /** The file it is kept in; none when the operator gave it (or the directory is not writable). */
  file?: string;
  /** Why a generated token could not be kept (it lives for this run only), for the operator. */
  unkept?: string;
}

/** The token kept in `file` under `dir`, when there is one. */
export function readKeptToken(name: string, dir: string): Token | undefined {
  const file = join(dir, name);
  try {
    const token = readFileSync(file, 'utf8').trim();
    return token.length >= MIN_TOKEN_LENGTH ? { token, file } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `given` when set; else the token kept in `dir/name`; else a new random one, written there with
 * mode 0600 (when the directory cannot be written, the token lives for this run only).
 */
export function ensureToken(given: string | undefined, name: string, dir: string): Token {
  if (given) return { token: given };
  const existing = readKeptToken(name, dir);
  if (existing) return existing;
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  const file = join(dir, name);
  try {
    makeDirectories(dir, 0o700);
    // 'wx': two programs starting at once never overwrite each other's token.
    writeFileSync(file, token + '\n', { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
    return { token, file };
  } catch (err) {
    const other = (err as NodeJS.ErrnoException).code === 'EEXIST' ? readKeptToken(name, dir) : undefined;
    return other ?? { token, unkept: `could not keep it in ${file}: ${(err as Error).message}` };
  }
}

/** ` (for this run only: why)` when a generated token could not be kept, else nothing. */
function unkeptNote(t: Token): string {
  return t.unkept ? ` (for this run only: ${t.unkept})` : '';
}

/** Where an operator finds `t`: its file, the variable they set, or (kept nowhere) the token itself. */
export function whereToFind(t: Token, given: string | undefined, variable: string): string {
  if (t.file) return `the token is in ${t.file}`;
  return given ? `the token is the ${variable} you gave` : `token ${t.token}${unkeptNote(t)}`;
}

/** The status page link an operator opens: the token rides in the fragment, which never leaves the browser. */
export function statusPageLink(adminUrl: string, t: Token, given: string | undefined): string {
  return `${adminUrl}/#token=${given ? '<your ADMIN_AUTH_TOKEN>' : t.token}${unkeptNote(t)}`;
}
