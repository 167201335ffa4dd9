/** nbpool's version, read once from package.json (for `--version`, /api/stats and the redirector). */
import { readFileSync } from 'node:fs';

function readVersion(): string {
  // From source (shared/) the file is one level up; compiled (dist/shared/), two.
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'nbpool' && pkg.version) return pkg.version;
    } catch {
      // Try the other location.
    }
  }
  return 'unknown';
}

export const VERSION = readVersion();
