/**
 * Affinity cookies that bring a returning visitor back where they were (the orchestrator: their own
 * container; the redirector: their node), so reloading an embedding page does not start over.
 */
import type { IncomingMessage } from 'node:http';

const VALUE = /^[A-Za-z0-9_.-]{1,64}$/;

/** The value of cookie `name`, when it is a plain token (anything else is ignored). */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return VALUE.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/**
 * A Set-Cookie value. Inside a publisher's iframe the cookie is third-party, so where browsers
 * allow Secure cookies (https, or loopback) it is a partitioned `SameSite=None` cookie (CHIPS: kept
 * per embedding site, accepted where third-party cookies are blocked); elsewhere a first-party
 * `SameSite=Lax` one.
 */
export function affinityCookie(req: IncomingMessage, name: string, value: string, maxAgeSeconds: number): string {
  const proto = String(req.headers['x-forwarded-proto'] ?? '').split(',')[0]!.trim();
  const host = String(req.headers['x-forwarded-host'] ?? req.headers.host ?? '').replace(/:\d+$/, '');
  const secureContext =
    proto === 'https' || (req.socket as { encrypted?: boolean }).encrypted === true ||
    host === 'localhost' || host.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]';
  const scope = secureContext ? 'SameSite=None; Secure; Partitioned' : 'SameSite=Lax';
  return `${name}=${value}; Path=/; Max-Age=${Math.max(60, Math.round(maxAgeSeconds))}; HttpOnly; ${scope}`;
}
