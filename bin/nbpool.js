#!/usr/bin/env -S node --max-semi-space-size=8
// Entry point: runs the compiled CLI (npm ci builds it through the `prepare` script).
// The node flags above are the ones every nbpool program runs with (deploy/Dockerfile repeats
// them; bench/lib/peers.ts reads them from here). --max-semi-space-size=8 (MiB; V8's default grows
// to 16): the proxy's live data is its long-lived route table, so a larger young generation buys
// nothing and costs its RSS about 18 MiB at 100,000 routes (bench:proxy); at 10,000 routes its
// req/s were 1.13x the default's in 8 back-to-back pairs, and 4 MiB cost 1.10x the CPU.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli/nbpool.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('nbpool: not built yet; run `npm run build` (npm ci and npm install build it for you)');
  process.exit(1);
}
await import(cli.href);
