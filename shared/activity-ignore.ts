/**
 * `"activity_ignore"`: a route's list of regular expressions for an app's own periodic requests
 * (polls), which must not count as a person's activity. The proxy compiles it from route data;
 * the orchestrator checks a pool's list when it reads its config, so a bad pattern stops the
 * start instead of failing every claim.
 */
import { setFlagsFromString } from 'node:v8';
import { BadRequest } from './errors.js';

/** Bounds: route data comes from an admin, but a pattern runs on every request. */
const MAX_IGNORE_PATTERNS = 32;
const MAX_IGNORE_PATTERN_LENGTH = 200;
/** Longer paths are never an app's poll: they count as activity without running any pattern. */
export const MAX_IGNORE_TESTED_LENGTH = 2048;

// Patterns run in V8's linear-time engine (the `l` flag), which this flag makes available: a
// backtracking pattern such as `(a+)+b` would otherwise let one request of a few dozen characters
// hold the proxy's only thread for seconds or hours. The flag only adds the `l` flag; no other
// regular expression changes. Patterns that need backtracking (back-references, lookaround) are
// refused when the route or pool is given.
setFlagsFromString('--enable-experimental-regexp-engine');

/**
 * `["^/api/kernels$", ...]` -> compiled patterns, tested against each request's path and query after
 * the route's prefix. Absent: undefined (every request counts). Bad input: BadRequest naming `what`.
 */
export function parseActivityIgnore(value: unknown, what = "'activity_ignore'"): RegExp[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length > MAX_IGNORE_PATTERNS) {
    throw new BadRequest(`${what} must be a list of at most ${MAX_IGNORE_PATTERNS} regular expressions`);
  }
  return value.map((pattern: unknown) => {
    if (typeof pattern !== 'string' || pattern.length > MAX_IGNORE_PATTERN_LENGTH) {
      throw new BadRequest(`${what} entries must be strings of at most ${MAX_IGNORE_PATTERN_LENGTH} characters`);
    }
    try {
      // eslint-disable-next-line no-invalid-regexp -- `l` (linear time) is V8's, enabled above.
      return new RegExp(pattern, 'l');
    } catch (err) {
      const message = (err as Error).message;
      if (/linear time/.test(message)) {
        throw new BadRequest(`${what} entry ${JSON.stringify(pattern)} needs backtracking (a back-reference or lookaround), which a pattern run on every request may not use`);
      }
      throw new BadRequest(`${what} entry ${JSON.stringify(pattern)} is not a regular expression: ${message}`);
    }
  });
}
