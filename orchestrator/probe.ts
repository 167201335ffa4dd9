/** Readiness probing: is a new container answering yet? Behind an interface so rule tests run without HTTP. */
import { request } from 'node:http';

export interface ReadinessProbe {
  /** One attempt with a deadline: true when `url` answered 2xx/3xx; rejects with the reason otherwise. */
  check(url: string, timeoutMs: number): Promise<void>;
}

export class HttpProbe implements ReadinessProbe {
  check(url: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs, headers: { Connection: 'close' } }, (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 400) resolve();
        else reject(new Error(`answered ${status}`));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  }
}
