/** Runs wrk against a URL with a Lua script that spreads requests over routed paths. */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface WrkResult {
  requests: number;
  seconds: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Socket errors plus non-2xx answers. */
  errors: number;
  non2xx: number;
}

// Each request picks a random route /user/r<i>/ (i < routes) and a sub-path under it.
// done() prints one JSON line that run() parses.
const script = `
local routes = 1
local counter = 0
function init(args)
  routes = tonumber(args[1])
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
function request()
  counter = counter + 1
  return wrk.format("GET", "/user/r" .. math.random(0, routes - 1) .. "/api/contents/" .. counter)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
`;

let scriptFile: string | undefined;

/** wrk with `connections` connections for `seconds` against base URL `url`, spreading over `routes` routes. */
export function runWrk(url: string, routes: number, seconds: number, connections = 50, threads = 2): Promise<WrkResult> {
  if (!scriptFile) {
    scriptFile = join(mkdtempSync(join(tmpdir(), 'nbpool-bench-wrk-')), 'routes.lua');
    writeFileSync(scriptFile, script);
  }
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--timeout', '5s', '-s', scriptFile, url, '--', String(routes)];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { timeout: (seconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk failed: ${err.message}\n${stderr}`));
      const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
      if (!line) return reject(new Error(`wrk printed no summary:\n${stdout}\n${stderr}`));
      const j = JSON.parse(line.slice(8)) as Record<string, number>;
      const seconds = j.duration_us! / 1e6;
      resolve({
        requests: j.requests!,
        seconds,
        reqPerSec: j.requests! / seconds,
        p50Ms: j.p50_us! / 1000,
        p99Ms: j.p99_us! / 1000,
        errors: j.connect! + j.read! + j.write! + j.timeout! + j.status!,
        non2xx: j.status!,
      });
    });
  });
}
