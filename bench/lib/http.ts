/** A small keep-alive HTTP client for benchmarks (node:http, no redirects followed). */
import { Agent, request } from 'node:http';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function keepAliveAgent(maxSockets = 64): Agent {
  return new Agent({ keepAlive: true, maxSockets });
}

export function httpRequest(
  url: string,
  { method = 'GET', headers = {}, body, agent, timeoutMs = 10_000 }: { method?: string; headers?: Record<string, string>; body?: string; agent?: Agent; timeoutMs?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `task(i)` for i in 0..count-1 with at most `concurrency` at once; returns results in order. */
export async function forEachLimited<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

/** Registers `paths` on a CHP-compatible REST API, all pointing at `target`. */
export async function addRoutes(apiUrl: string, token: string, paths: string[], target: string, concurrency = 32): Promise<void> {
  const agent = keepAliveAgent(concurrency);
  try {
    await forEachLimited(paths.length, concurrency, async (i) => {
      const res = await httpRequest(`${apiUrl}/api/routes${paths[i]}`, {
        method: 'POST',
        agent,
        headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ target }),
      });
      if (res.status !== 201 && res.status !== 200) throw new Error(`POST ${apiUrl}/api/routes${paths[i]} answered ${res.status}: ${res.body.slice(0, 200)}`);
    });
  } finally {
    agent.destroy();
  }
}
