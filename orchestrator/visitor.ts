/** Visitor ids and the paths and URLs built from them: the one place that knows `/user/<id>`. */
import { customAlphabet } from 'nanoid';

/**
 * Visitor ids: 24 characters of [0-9A-Za-z] (about 143 bits), so ids are URL-safe, valid in
 * container names and never reused in practice. No '-' or '_' so `<instance>-<pool>-<id>` parses.
 */
export const newVisitorId = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 24);

const ROUTE_PREFIX = '/user/';

/** The proxy route of a visitor's container: `/user/<id>`. */
export function routePath(id: string): string {
  return ROUTE_PREFIX + id;
}

/** The base path the container serves under: `/user/<id>/`. */
export function basePath(id: string): string {
  return ROUTE_PREFIX + id + '/';
}

/** The visitor id of a route path `/user/<id>`, or undefined for any other path. */
export function visitorIdOfRoute(path: string): string | undefined {
  if (!path.startsWith(ROUTE_PREFIX)) return undefined;
  const id = path.slice(ROUTE_PREFIX.length);
  return id && !id.includes('/') ? id : undefined;
}

/** The visitor id in any path under a visitor's base path (`/user/<id>/...`), or undefined. */
export function visitorIdOfPath(path: string): string | undefined {
  if (!path.startsWith(ROUTE_PREFIX)) return undefined;
  return visitorIdOfRoute(ROUTE_PREFIX + path.slice(ROUTE_PREFIX.length).split('/', 1)[0]);
}

export interface ClaimContext {
  /** Path inside the container, starting with '/', or '' for the pool's entry path. */
  path: string;
  /** The request's query string without '?' (passed to the hook, and on to the container). */
  query: string;
  /** Who asks (shared/client-address.ts clientKey), for fair shares; absent for admin claims. */
  client?: string;
}

/** Where a visitor is sent: /user/<id>/<path or entry path>[?query][&token=...]. */
export function visitorUrl(id: string, entryPath: string, context: ClaimContext, token: string | undefined): string {
  const path = context.path && context.path !== '/' ? context.path : entryPath;
  const params = new URLSearchParams(context.query);
  params.delete('pool');
  params.delete('ticket');
  if (token) params.set('token', token);
  const query = params.toString();
  return basePath(id) + path.replace(/^\/+/, '') + (query ? `?${query}` : '');
}
