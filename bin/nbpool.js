#!/usr/bin/env node
// Entry point: runs the compiled CLI (npm ci builds it through the `prepare` script).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli/nbpool.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('nbpool: not built yet; run `npm run build` (npm ci and npm install build it for you)');
  process.exit(1);
}
await import(cli.href);
