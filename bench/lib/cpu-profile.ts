/**
 * Reading a V8 .cpuprofile (what `node --cpu-prof` writes) for bench:claim-profile: every sample's
 * time goes to one category of "where a claim's time goes", decided by its stack, and only samples
 * inside given time windows count. Pure: a parsed profile in, milliseconds per category out.
 *
 * Sample times are V8's monotonic clock in microseconds, the clock `process.hrtime` reads in any
 * process on the same Linux host, so a bench can mark windows with its own hrtime.
 */

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A span of the monotonic clock, microseconds, both ends included. */
export interface Window {
  startUs: number;
  endUs: number;
}

export const CATEGORIES = [
  'proxy data path (proxy/forward, proxy/server)',
  'route registration (route-service, route-client)',
  'orchestrator (claim, pool, handlers)',
  'koa and @koa/router',
  'logging (pino)',
  'metrics (prom-client)',
  'engine calls (dockerode, docker-modem), the rest',
  'engine calls: docker-modem\'s debug util.inspect',
  'readiness probes (orchestrator/probe)',
  'other nbpool code (shared, cli)',
  'other libraries',
  'node:http client, under none of the above',
  'node:http server and sockets, under none of the above',
  'other node internals (timers, promises)',
  'GC',
  '(program): V8/native, not attributed',
  'idle',
] as const;

export type Category = (typeof CATEGORIES)[number];

/**
 * Categories by the file of a frame, first match wins. A frame whose file matches none (node
 * internals, route-table lookups, small dependencies) passes its time to its nearest caller that
 * does: the time a library spends in node:http on our behalf is that library's.
 */
const byFile: [RegExp, Category][] = [
  [/\/node_modules\/(pino|pino-[^/]+|sonic-boom|thread-stream)\/|\/dist\/shared\/log\.js$/, 'logging (pino)'],
  [/\/node_modules\/prom-client\/|\/dist\/(proxy|orchestrator|shared)\/metrics\.js$/, 'metrics (prom-client)'],
  [/\/node_modules\/(dockerode|docker-modem)\/|\/dist\/orchestrator\/(docker-backend|swarm-backend|engine-link|engine-queue)\.js$/, 'engine calls (dockerode, docker-modem), the rest'],
  [/\/dist\/orchestrator\/probe\.js$/, 'readiness probes (orchestrator/probe)'],
  [/\/node_modules\/(koa[^/]*|@koa\/[^/]+)\//, 'koa and @koa/router'],
  [/\/dist\/proxy\/route-service\.js$|\/dist\/shared\/route-client\.js$/, 'route registration (route-service, route-client)'],
  [/\/dist\/orchestrator\//, 'orchestrator (claim, pool, handlers)'],
  [/\/dist\/proxy\/(forward|server|response-rewrite|trusted-proxies|ws-frames)\.js$/, 'proxy data path (proxy/forward, proxy/server)'],
  [/\/dist\/(shared|cli)\//, 'other nbpool code (shared, cli)'],
];

/** Files that decide nothing themselves: their caller says whose work it is. */
const passThrough = /\/dist\/proxy\/route-table\.js$/;

function categoryOfStack(frames: readonly CpuProfileNode['callFrame'][]): Category {
  const leaf = frames[0]!;
  if (leaf.functionName === '(garbage collector)') return 'GC';
  if (leaf.functionName === '(idle)') return 'idle';
  if (leaf.functionName === '(program)' || leaf.functionName === '(root)') return '(program): V8/native, not attributed';
  let inInspect = false;
  for (const frame of frames) {
    if (frame.url === 'node:internal/util/inspect') inInspect = true;
    if (!frame.url || passThrough.test(frame.url)) continue;
    for (const [re, category] of byFile) {
      if (!re.test(frame.url)) continue;
      // docker-modem formats every request's options for its debug log, enabled or not
      return inInspect && /\/docker-modem\//.test(frame.url) ? 'engine calls: docker-modem\'s debug util.inspect' : category;
    }
    if (/\/node_modules\//.test(frame.url)) return 'other libraries';
  }
  if (frames.some((f) => f.url === 'node:_http_client' || f.url === 'node:_http_agent')) return 'node:http client, under none of the above';
  if (frames.some((f) => /^node:(_http_|net$|internal\/stream_base_commons|internal\/streams\/)/.test(f.url))) return 'node:http server and sockets, under none of the above';
  return 'other node internals (timers, promises)';
}

export type Attribution = Record<Category, number>;

export function emptyAttribution(): Attribution {
  return Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Attribution;
}

/**
 * Milliseconds of samples per category inside `windows` (a sample lasts until the next one; the
 * part of it inside a window counts). The category of each profile node is computed once from its
 * path to the root.
 */
export function attribute(profile: CpuProfile, windows: readonly Window[]): Attribution {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const categoryOf = new Map<number, Category>();
  const categorize = (id: number): Category => {
    let category = categoryOf.get(id);
    if (category === undefined) {
      const frames: CpuProfileNode['callFrame'][] = [];
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) frames.push(byId.get(at)!.callFrame);
      category = categoryOfStack(frames);
      categoryOf.set(id, category);
    }
    return category;
  };
  // a sample stands for the time until the next one; only the part of it inside a window counts
  // (on a loaded machine one sample can span many ms when the process waits for a CPU)
  const overlapUs = (from: number, to: number) => windows.reduce((sum, w) => sum + Math.max(0, Math.min(to, w.endUs) - Math.max(from, w.startUs)), 0);
  const out = emptyAttribution();
  let t = profile.startTime;
  const times = profile.timeDeltas.map((d) => (t += d));
  for (let i = 0; i < profile.samples.length; i++) {
    const us = overlapUs(times[i]!, i + 1 < times.length ? times[i + 1]! : profile.endTime);
    if (us > 0) out[categorize(profile.samples[i]!)] += us / 1000;
  }
  return out;
}

/** Total milliseconds of an attribution, with or without idle time. */
export function totalMs(a: Attribution, withIdle = false): number {
  return CATEGORIES.reduce((sum, c) => sum + (withIdle || c !== 'idle' ? a[c] : 0), 0);
}
