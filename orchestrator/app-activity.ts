/**
 * Asking a container whether its app is busy, so culling does not remove a kernel that is still
 * computing with the tab closed. Per app preset (presets.ts `activity`): Jupyter answers
 * `GET <base>/api/kernels` with each kernel's `execution_state` and `last_activity`. Apps with no
 * such API are never asked. Behind an interface so the rule tests run without HTTP.
 */
import { request } from 'node:http';

export type ActivityApi = 'jupyter';

export interface AppActivity {
  /** Some kernel is executing right now. */
  busy: boolean;
  /** The latest kernel activity (ms since the epoch), when the app reports one. */
  lastActivity?: number;
}

export interface AppActivityProbe {
  /** What the app in the container says; undefined when it cannot tell (no answer, not JSON). */
  ask(api: ActivityApi, target: string, basePath: string, token: string | undefined, timeoutMs: number): Promise<AppActivity | undefined>;
}

/** Jupyter's `/api/kernels` answer -> busy and the latest kernel activity; undefined when malformed. */
export function jupyterKernelActivity(body: unknown): AppActivity | undefined {
  if (!Array.isArray(body)) return undefined;
  let busy = false;
  let lastActivity: number | undefined;
  for (const kernel of body as Array<Record<string, unknown>>) {
    if (typeof kernel !== 'object' || kernel === null) return undefined;
    if (kernel.execution_state === 'busy') busy = true;
    const at = typeof kernel.last_activity === 'string' ? Date.parse(kernel.last_activity) : NaN;
    if (Number.isFinite(at)) lastActivity = Math.max(lastActivity ?? 0, at);
  }
  return { busy, ...(lastActivity !== undefined ? { lastActivity } : {}) };
}

export class HttpAppActivityProbe implements AppActivityProbe {
  ask(api: ActivityApi, target: string, basePath: string, token: string | undefined, timeoutMs: number): Promise<AppActivity | undefined> {
    const url = `${target}${basePath}api/kernels`;
    const headers: Record<string, string> = { Connection: 'close', Accept: 'application/json', ...(token ? { Authorization: `token ${token}` } : {}) };
    return new Promise((resolve) => {
      const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs, headers }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > 1024 * 1024) req.destroy();
          else chunks.push(chunk);
        });
        res.on('end', () => {
          if (res.statusCode !== 200) return resolve(undefined);
          try {
            resolve(api === 'jupyter' ? jupyterKernelActivity(JSON.parse(Buffer.concat(chunks).toString('utf8'))) : undefined);
          } catch {
            resolve(undefined);
          }
        });
        res.on('error', () => resolve(undefined));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
      req.end();
    });
  }
}
