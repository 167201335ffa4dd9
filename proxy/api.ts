/**
 * configurable-http-proxy's REST API, kept exactly on the wire, as a thin layer over RouteService:
 *   GET    /api/routes[?inactive_since=ISO]   all routes (path -> data)
 *   GET    /api/routes/<path>                 one route, 404 when absent
 *   POST   /api/routes/<path>  {"target": ...} add or replace, 201
 *   DELETE /api/routes/<path>                 204, 404 when absent
 * with `Authorization: token <t>` when a token is configured (403 otherwise). Every bad input is a
 * 4xx with a JSON message.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequest, Forbidden, MethodNotAllowed, NotFound } from '../shared/errors.js';
import { decodePath, hasToken, parseJsonObject, readBody, sendError, sendJson } from '../shared/http.js';
import type { Logger } from '../shared/log.js';
import type { RouteService } from './route-service.js';

const COLLECTION = '/api/routes';
const METHODS = ['GET', 'POST', 'DELETE'] as const;

function inactiveSinceOf(query: string): Date | undefined {
  const params = new URLSearchParams(query);
  // CHP reads the camelCase name first, then the older snake_case one.
  const value = params.get('inactiveSince') || params.get('inactive_since');
  if (!value) return undefined;
  const stamp = Date.parse(value);
  if (!Number.isFinite(stamp)) throw new BadRequest(`Invalid datestamp ${JSON.stringify(value.slice(0, 100))} must be ISO8601.`);
  return new Date(stamp);
}

async function handle(service: RouteService, authToken: string | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  if (rawPath !== COLLECTION && !rawPath.startsWith(COLLECTION + '/')) throw new NotFound('not found; the API serves /api/routes');
  const method = req.method ?? '';
  if (!(METHODS as readonly string[]).includes(method)) throw new MethodNotAllowed(METHODS);
  if (!hasToken(req, authToken)) throw new Forbidden();
  const sub = rawPath.slice(COLLECTION.length);
  const routePath = decodePath(sub);

  switch (method) {
    case 'GET': {
      if (routePath === '' || routePath === '/') {
        sendJson(res, 200, service.list(inactiveSinceOf(q === -1 ? '' : url.slice(q + 1))));
      } else {
        sendJson(res, 200, service.get(routePath));
      }
      return;
    }
    case 'POST': {
      const data = parseJsonObject(await readBody(req));
      await service.add(routePath === '' ? '/' : routePath, data);
      res.writeHead(201, { 'Content-Length': 0 }).end();
      return;
    }
    case 'DELETE': {
      if (sub === '') throw new MethodNotAllowed(['GET', 'POST']);
      const existed = await service.remove(routePath);
      if (!existed) throw new NotFound(`no route at ${JSON.stringify(routePath.slice(0, 200))}`);
      res.writeHead(204).end();
      return;
    }
  }
}

export function apiHandler(service: RouteService, authToken: string | undefined, log: Logger) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    handle(service, authToken, req, res).then(
      () => log.debug({ method: req.method, url: req.url, status: res.statusCode }, 'api'),
      (err: unknown) => {
        sendError(res, err, log);
        log.info({ method: req.method, url: req.url?.slice(0, 200), status: res.statusCode, message: (err as Error).message }, 'api request refused');
      },
    );
  };
}
