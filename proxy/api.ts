/**
 * configurable-http-proxy's REST API, kept exactly on the wire, as a thin layer over RouteService:
 *   GET    /api/routes[?inactive_since=ISO]   all routes (path -> data)
 *   GET    /api/routes/<path>                 one route, 404 when absent
 *   POST   /api/routes/<path>  {"target": ...} add or replace, 201
 *   DELETE /api/routes/<path>                 204, 404 when absent
 * with `Authorization: token <t>` (403 otherwise). As in CHP, an unknown path is a 404 and another
 * method a 405 before the token is looked at. Every bad input is a 4xx with a JSON message.
 */
import type Koa from 'koa';
import { Router } from '@koa/router';
import { BadRequest, MethodNotAllowed, NotFound } from '../shared/errors.js';
import { decodePath } from '../shared/http.js';
import type { Logger } from '../shared/log.js';
import { apiApp, emptyReply, jsonBody, methodNotAllowed, notFound, requireToken, type Context, type Middleware } from '../shared/web.js';
import type { RouteService } from './route-service.js';

const COLLECTION = '/api/routes';
/** The collection and everything under it, matched on the raw path (the route path may hold anything). */
const ROUTES = /^\/api\/routes(?:\/.*)?$/;
const METHODS = ['GET', 'POST', 'DELETE'];

function inactiveSinceOf(query: string): Date | undefined {
  const params = new URLSearchParams(query);
  // CHP reads the camelCase name first, then the older snake_case one.
  const value = params.get('inactiveSince') || params.get('inactive_since');
  if (!value) return undefined;
  const stamp = Date.parse(value);
  if (!Number.isFinite(stamp)) throw new BadRequest(`Invalid datestamp ${JSON.stringify(value.slice(0, 100))} must be ISO8601.`);
  return new Date(stamp);
}

/** What follows /api/routes in the raw path, e.g. `/user/a%20b/`. */
function subPath(ctx: Context): string {
  return ctx.path.slice(COLLECTION.length);
}

/** The decoded route path, before the body is read (a malformed path is the first 400). */
const routePath: Middleware = (ctx, next) => {
  ctx.state.routePath = decodePath(subPath(ctx));
  return next();
};

/** CHP has no HEAD on its API; the router would answer one as a GET. */
const noHead: Middleware = (ctx, next) => {
  if (ctx.method === 'HEAD') throw new MethodNotAllowed(METHODS);
  return next();
};

/** The REST API as a koa app, routes declared here. */
export function routesApi(service: RouteService, authToken: string | undefined, log: Logger): Koa {
  const router = new Router({ sensitive: true });
  const auth = requireToken(authToken);

  router.get(ROUTES, noHead, auth, routePath, (ctx) => {
    const path = ctx.state.routePath as string;
    ctx.body = path === '' || path === '/' ? service.list(inactiveSinceOf(ctx.querystring)) : service.get(path);
  });
  router.post(ROUTES, auth, routePath, jsonBody(), async (ctx) => {
    const path = ctx.state.routePath as string;
    await service.add(path === '' ? '/' : path, ctx.request.body!);
    emptyReply(ctx, 201);
  });
  router.delete(ROUTES, auth, routePath, async (ctx) => {
    // DELETE /api/routes/ removes the root route; the collection itself cannot be deleted.
    if (subPath(ctx) === '') throw new MethodNotAllowed(['GET', 'POST']);
    const path = ctx.state.routePath as string;
    if (!(await service.remove(path))) throw new NotFound(`no route at ${JSON.stringify(path.slice(0, 200))}`);
    ctx.status = 204;
  });

  return apiApp(log, router.routes(), methodNotAllowed(), notFound(() => 'not found; the API serves /api/routes'));
}
