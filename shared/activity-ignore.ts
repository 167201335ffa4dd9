/**
 * `"activity_ignore"`: a route's list of regular expressions for an app's own periodic requests
 * (polls), which must not count as a person's activity. The proxy compiles it from route data;
 * the orchestrator checks a pool's list when it reads its config, so a bad pattern stops the
 * start instead of failing every claim.
 */
import { BadRequest } from './errors.js';

/** Bounds: route data comes from an admin, but a pattern runs on every request. */
const MAX_IGNORE_PATTERNS = 32;
const MAX_IGNORE_PATTERN_LENGTH = 200;

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
      return new RegExp(pattern);
    } catch (err) {
      throw new BadRequest(`${what} entry ${JSON.stringify(pattern)} is not a regular expression: ${(err as Error).message}`);
    }
  });
}
