/** The RouteTableClient that speaks configurable-http-proxy's REST API over HTTP. */
import { HttpError } from './errors.js';
import type { RouteData, RouteTableClient } from './types.js';

export class HttpRouteTableClient implements RouteTableClient {
  private readonly base: string;

  /** `endpoint` is the API's base URL (CONFIGPROXY_ENDPOINT), e.g. http://127.0.0.1:8001. */
  constructor(
    endpoint: string,
    private readonly token: string | undefined,
    private readonly timeoutMs = 5000,
  ) {
    this.base = endpoint.replace(/\/+$/, '');
  }

  private async call(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.token) headers.Authorization = `token ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    return res;
  }

  private static routePath(path: string): string {
    return '/api/routes' + path.split('/').map(encodeURIComponent).join('/');
  }

  private static async fail(res: Response, what: string): Promise<never> {
    const text = await res.text().catch(() => '');
    throw new HttpError(502, `proxy API ${what} answered ${res.status}: ${text.slice(0, 200)}`);
  }

  async addRoute(path: string, data: RouteData): Promise<void> {
    const res = await this.call('POST', HttpRouteTableClient.routePath(path), data);
    if (res.status !== 201 && res.status !== 200) await HttpRouteTableClient.fail(res, `POST ${path}`);
    await res.arrayBuffer();
  }

  async deleteRoute(path: string): Promise<void> {
    const res = await this.call('DELETE', HttpRouteTableClient.routePath(path));
    if (res.status !== 204 && res.status !== 404 && res.status !== 200) await HttpRouteTableClient.fail(res, `DELETE ${path}`);
    await res.arrayBuffer();
  }

  async getRoutes(inactiveSince?: Date): Promise<Record<string, RouteData>> {
    const query = inactiveSince ? `?inactive_since=${encodeURIComponent(inactiveSince.toISOString())}` : '';
    const res = await this.call('GET', `/api/routes${query}`);
    if (res.status !== 200) await HttpRouteTableClient.fail(res, 'GET /api/routes');
    return (await res.json()) as Record<string, RouteData>;
  }
}
