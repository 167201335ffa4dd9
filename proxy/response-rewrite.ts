/**
 * Per-response header rewrites, pure: keeping a visitor under the route's path when the route
 * strips its prefix (issue 16 part 2), and making the container's cookies usable in a publisher's
 * cross-site iframe when the visitor came over HTTPS (issue 15 part 1).
 */

/** What to change in one response's headers; undefined fields change nothing. */
export interface ResponseRewrite {
  /**
   * The route's prefix as the visitor sees it (e.g. `/user/abc`), when the route strips it before
   * forwarding: Location headers and cookie paths the app wrote for `/` are put back under it.
   */
  prefix: string | undefined;
  /** The target's own `host:port`, whose absolute redirects are the app's own. */
  targetHost: string;
  /** Add `SameSite=None; Secure; Partitioned` to cookies that set no SameSite (the visitor is on HTTPS). */
  crossSiteCookies: boolean;
}

/** A path the app wrote for its own root, moved under `prefix` (`/` -> `/user/abc/`). */
function underPrefix(prefix: string, path: string): string {
  if (path === prefix || path.startsWith(prefix + '/')) return path;
  return prefix + path;
}

/**
 * A Location header from an app that believes it lives at `/`: an absolute path, or an absolute URL
 * on the target's own host or the visitor's, goes back under the prefix. Relative references and
 * other sites are left alone.
 */
export function rewriteLocation(location: string, prefix: string, targetHost: string, requestHost: string | undefined): string {
  if (location.startsWith('/') && !location.startsWith('//')) return underPrefix(prefix, location);
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return location;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || (url.host !== targetHost && url.host !== requestHost)) return location;
  url.pathname = underPrefix(prefix, url.pathname);
  return url.toString();
}

/** One Set-Cookie value with its Path under `prefix` and/or the cross-site attributes added. */
export function rewriteSetCookie(cookie: string, prefix: string | undefined, crossSite: boolean): string {
  const parts = cookie.split(';');
  let hasSameSite = false;
  let hasSecure = false;
  let hasPartitioned = false;
  for (let i = 1; i < parts.length; i++) {
    const attribute = parts[i]!;
    const eq = attribute.indexOf('=');
    const name = (eq === -1 ? attribute : attribute.slice(0, eq)).trim().toLowerCase();
    if (name === 'samesite') hasSameSite = true;
    else if (name === 'secure') hasSecure = true;
    else if (name === 'partitioned') hasPartitioned = true;
    else if (name === 'path' && prefix !== undefined && eq !== -1) {
      const path = attribute.slice(eq + 1).trim();
      if (path.startsWith('/')) parts[i] = ` Path=${path === '/' ? prefix : underPrefix(prefix, path)}`;
    }
  }
  let out = parts.join(';');
  // A cookie that chose its SameSite policy keeps it; the others must cross sites to work in an iframe.
  if (crossSite && !hasSameSite) {
    out += '; SameSite=None';
    if (!hasSecure) out += '; Secure';
    if (!hasPartitioned) out += '; Partitioned';
  }
  return out;
}

/** Applies `rewrite` to a flat [name, value, ...] header list in place. */
export function rewriteResponseHeaders(headers: string[], rewrite: ResponseRewrite, requestHost: string | undefined): void {
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i]!.toLowerCase();
    if (lower === 'location' && rewrite.prefix !== undefined) {
      headers[i + 1] = rewriteLocation(headers[i + 1]!, rewrite.prefix, rewrite.targetHost, requestHost);
    } else if (lower === 'set-cookie' && (rewrite.prefix !== undefined || rewrite.crossSiteCookies)) {
      headers[i + 1] = rewriteSetCookie(headers[i + 1]!, rewrite.prefix, rewrite.crossSiteCookies);
    }
  }
}
