/**
 * bench:proxy (issues 9, 14, 17). HTTP: nginx upstream, 10,000 routes registered through the REST
 * API on ours and on configurable-http-proxy (CHP), nginx as a proxy for reference (one
 * `location /`, no routes); wrk, 50 connections, random routed paths, peers alternated over rounds,
 * medians and every round reported. Also ours at 10 vs 100,000 routes and its RSS at 100,000.
 * WebSocket: the tiny C echo server, 50 clients, messages/s and the proxy process's own CPU time
 * per echoed message; 1 MiB messages checked too. Each figure carries the machine's load
 * (/proc/loadavg) at its start and end.
 * Churn: descriptors and RSS of a fresh `nbpool proxy` before and after thousands of WebSockets
 * closed every way and abandoned requests. (bench/results/proxy-engines.json is the run that
 * weighed http-proxy-3 against our forwarder, see bench/README.md.)
 * The 3x goal is judged on pairs: short wrk runs of ours and CHP back to back (which goes first
 * alternates), a ratio per pair, since this machine's speed drifts by 2x over tens of seconds and a
 * round's peers run up to half a minute apart.
 * Env: BENCH_ROUNDS (3), BENCH_SECONDS (5 per wrk or WebSocket run), BENCH_PAIRS (12),
 * BENCH_PAIR_SECONDS (2), BENCH_CHURN (500 WebSockets per way of closing).
 */
import { CHURN_MODES, churnSocket, fdCount, runChurn, startChurnUpstream } from '../test/helpers/churn.js';
import { addRoutes } from './lib/http.js';
import { startNginxProxy, startNginxUpstream } from './lib/nginx.js';
import { ourProgramExists, proxyToken, startChpLike, startTinyServer, type RunningProxy } from './lib/peers.js';
import { cpuSeconds, rssMiB, sleep, type Proc } from './lib/procs.js';
import { describeLoad, goalOverRounds, loadMark, loadSince, median, noteLoad, printGoals, printTable, round, withLoad, writeResults, type Goal, type LoadSpan } from './lib/stats.js';
import { runWrk, type WrkResult } from './lib/wrk.js';
import { runWsLoad, type WsLoadResult } from './lib/ws-load.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const churnPerMode = Number(process.env.BENCH_CHURN ?? 500);
const pairs = Number(process.env.BENCH_PAIRS ?? 12);
const pairSeconds = Number(process.env.BENCH_PAIR_SECONDS ?? 2);
const ROUTES = 10_000;
const BIG = 100_000;
// unrouted requests go nowhere (nothing listens on port 1), so a missing route shows as an error
const deadTarget = 'http://127.0.0.1:1';

const routePaths = (n: number) => Array.from({ length: n }, (_, i) => `/user/r${i}`);

interface Loaded {
  /** The machine's load over this figure's run. */
  load: LoadSpan;
}

interface HttpPeer {
  name: string;
  url: string;
  routes: number | string;
  proc: Proc;
  runs: (WrkResult & Loaded)[];
  rss: number[];
}

type WsRun = WsLoadResult & Loaded & { cpuUsPerMsg: number };

interface WsPeer {
  name: string;
  url: string;
  /** The process whose CPU time is counted (none for the direct connection). */
  proc?: Proc;
  runs: WsRun[];
  big?: WsRun;
}

function say(msg: string): void {
  process.stdout.write(msg + '\n');
}

/** One pair: each side's figure, the ratio of the first to the second, the machine's load. */
type Pair<A extends string, B extends string> = Record<A | B, number> & { ratio: number; load: LoadSpan };

/**
 * `pairs` measurements of sides `a` and `b` back to back (which goes first alternates), one ratio
 * (a against b) a pair: both sides of a ratio see the machine at nearly the same moment.
 */
async function inPairs<A extends string, B extends string>(a: A, b: B, measure: (side: A | B) => Promise<number>, unit: string): Promise<Array<Pair<A, B>>> {
  const out: Array<Pair<A, B>> = [];
  for (let i = 0; i < pairs; i++) {
    const { value, load } = await withLoad(async () => {
      const [first, second] = i % 2 === 0 ? [a, b] : [b, a];
      const firstValue = await measure(first);
      const secondValue = await measure(second);
      return first === a ? { a: firstValue, b: secondValue } : { a: secondValue, b: firstValue };
    });
    const r = value.a / value.b;
    out.push({ [a]: round(value.a, 2), [b]: round(value.b, 2), ratio: round(r, 3), load } as Pair<A, B>);
    say(`  pair ${i + 1}: ${a} ${round(value.a, 1)} ${unit}, ${b} ${round(value.b, 1)} ${unit}: ${r.toFixed(2)}x  ${describeLoad(load)}`);
  }
  return out;
}

async function main(): Promise<void> {
  if (!ourProgramExists('proxy')) {
    // A bench that cannot start our program must not pass for one that measured nothing.
    throw new Error('nbpool proxy is not built (npm run build) or does not start: nothing to measure');
  }
  const started = Date.now();
  const loadAtStart = noteLoad('at the start');
  const procs: Proc[] = [];
  const track = <T extends Proc>(p: T): T => {
    procs.push(p);
    return p;
  };
  try {
    // ---------- HTTP ----------
    const upstream = track(await startNginxUpstream());
    const target = `http://127.0.0.1:${upstream.port}`;
    const peers: HttpPeer[] = [];
    const addChpLike = async (kind: 'ours' | 'chp', name: string, routes: number) => {
      const p = track(await startChpLike(kind, name, deadTarget));
      const t0 = Date.now();
      await addRoutes(p.apiUrl, proxyToken, routePaths(routes), target);
      say(`${name}: ${routes} routes registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      peers.push({ name, url: p.url, routes, proc: p, runs: [], rss: [] });
      return p;
    };
    await addChpLike('chp', 'CHP 5.3', ROUTES);
    const nginxProxy = track(await startNginxProxy(`127.0.0.1:${upstream.port}`));
    peers.push({ name: 'nginx', url: `http://127.0.0.1:${nginxProxy.port}`, routes: 'one location /', proc: nginxProxy, runs: [], rss: [] });
    await addChpLike('ours', 'ours', ROUTES);
    await addChpLike('ours', 'ours@10', 10);
    await addChpLike('ours', 'ours@100k', BIG);
    const routesOf = (p: HttpPeer) => (typeof p.routes === 'number' ? p.routes : ROUTES);

    say(`\nHTTP: wrk -c50 -t2, ${seconds} s per run, ${rounds} rounds, peers alternated`);
    for (const p of peers) await runWrk(p.url, routesOf(p), 1); // warm-up (JIT, connections)
    for (let r = 0; r < rounds; r++) {
      const order = peers.map((_, i) => peers[(i + r) % peers.length]!);
      for (const p of order) {
        const { value: res, load } = await withLoad(() => runWrk(p.url, routesOf(p), seconds));
        p.runs.push({ ...res, load });
        p.rss.push(rssMiB(p.proc.pid));
        say(`  round ${r + 1} ${p.name.padEnd(18)} ${Math.round(res.reqPerSec)} req/s  p99 ${res.p99Ms.toFixed(2)} ms  errors ${res.errors}  ${describeLoad(load)}`);
      }
    }
    const httpRow = (p: HttpPeer) => ({
      name: p.name,
      routes: p.routes,
      reqPerSec: round(median(p.runs.map((x) => x.reqPerSec)), 0),
      p50Ms: round(median(p.runs.map((x) => x.p50Ms)), 3),
      p99Ms: round(median(p.runs.map((x) => x.p99Ms)), 3),
      rssMiB: round(Math.max(...p.rss), 1),
      errors: p.runs.reduce((s, x) => s + x.errors, 0),
      runs: p.runs.map((x) => ({ reqPerSec: round(x.reqPerSec, 0), p99Ms: round(x.p99Ms, 3), load: x.load })),
    });
    const http = peers.map(httpRow);
    const get = (name: string) => http.find((h) => h.name === name)!;
    const chp = get('CHP 5.3');
    const nginx = get('nginx');
    printTable(
      'HTTP (medians over rounds; RSS is the largest seen after a run; nginx proxies one `location /`, it has no route table)',
      ['proxy', 'routes', 'req/s', 'p50 ms', 'p99 ms', 'RSS MiB', 'errors', 'req/s x CHP', 'req/s x nginx', 'p99 x CHP', 'RSS x CHP', 'req/s per round'],
      http.map((h) => [h.name, h.routes, h.reqPerSec, h.p50Ms, h.p99Ms, h.rssMiB, h.errors, h.reqPerSec / chp.reqPerSec, h.reqPerSec / nginx.reqPerSec, h.p99Ms / chp.p99Ms, h.rssMiB / chp.rssMiB, h.runs.map((x) => x.reqPerSec).join(' / ')]),
    );

    // ---------- HTTP, ours and CHP in pairs ----------
    say(`\nHTTP pairs: ours and CHP back to back, ${pairSeconds} s each, ${pairs} pairs, which goes first alternating`);
    const oursHttp = peers.find((p) => p.name === 'ours')!;
    const chpHttp = peers.find((p) => p.name === 'CHP 5.3')!;
    const httpPairs = await inPairs('ours', 'chp', async (peer) => (await runWrk((peer === 'ours' ? oursHttp : chpHttp).url, ROUTES, pairSeconds)).reqPerSec, 'req/s');

    // ---------- HTTP, ours at 100,000 routes and at 10 in pairs ----------
    say(`\nHTTP pairs: ours at 100,000 routes and at 10 back to back, ${pairSeconds} s each, ${pairs} pairs`);
    const at100k = peers.find((p) => p.name === 'ours@100k')!;
    const at10 = peers.find((p) => p.name === 'ours@10')!;
    const routesPairs = await inPairs('at100k', 'at10', async (side) => (await runWrk((side === 'at100k' ? at100k : at10).url, side === 'at100k' ? BIG : 10, pairSeconds)).reqPerSec, 'req/s');

    // ---------- WebSocket ----------
    const echo = track(await startTinyServer());
    const echoTarget = `http://127.0.0.1:${echo.port}`;
    const wsPeers: WsPeer[] = [{ name: 'direct', url: `ws://127.0.0.1:${echo.port}/user/ws/echo`, runs: [] }];
    const wsNginx = track(await startNginxProxy(`127.0.0.1:${echo.port}`));
    const chpProc = peers.find((p) => p.name === 'CHP 5.3')!.proc as RunningProxy;
    await addRoutes(chpProc.apiUrl, proxyToken, ['/user/ws'], echoTarget);
    wsPeers.push({ name: 'CHP 5.3', url: `ws://127.0.0.1:${chpProc.port}/user/ws/echo`, proc: chpProc, runs: [] });
    wsPeers.push({ name: 'nginx', url: `ws://127.0.0.1:${wsNginx.port}/user/ws/echo`, proc: wsNginx, runs: [] });
    const oursProc = peers.find((p) => p.name === 'ours')!.proc as RunningProxy;
    await addRoutes(oursProc.apiUrl, proxyToken, ['/user/ws'], echoTarget);
    wsPeers.push({ name: 'ours', url: `ws://127.0.0.1:${oursProc.port}/user/ws/echo`, proc: oursProc, runs: [] });
    const measure = async (p: WsPeer, opts: Parameters<typeof runWsLoad>[1]): Promise<WsRun> => {
      const start = loadMark();
      const cpu0 = p.proc ? cpuSeconds(p.proc.pid) : 0;
      const res = await runWsLoad(p.url, opts);
      const cpu = p.proc ? cpuSeconds(p.proc.pid) - cpu0 : NaN;
      return { ...res, cpuUsPerMsg: (cpu * 1e6) / res.received, load: loadSince(start) };
    };
    say(`\nWebSocket: 50 connections, 128-byte messages, one in flight each, ${seconds} s per run, ${rounds} rounds`);
    for (const p of wsPeers) await runWsLoad(p.url, { connections: 50, messageBytes: 128, seconds: 1 }); // warm-up
    for (let r = 0; r < rounds; r++) {
      const order = wsPeers.map((_, i) => wsPeers[(i + r) % wsPeers.length]!);
      for (const p of order) {
        const res = await measure(p, { connections: 50, messageBytes: 128, seconds });
        p.runs.push(res);
        say(`  round ${r + 1} ${p.name.padEnd(18)} ${Math.round(res.messagesPerSec)} msg/s  ${res.cpuUsPerMsg.toFixed(1)} µs CPU/msg  lost ${res.lost} altered ${res.altered} failures ${res.failures}  ${describeLoad(res.load)}`);
      }
    }
    say(`\nWebSocket pairs: ours and CHP back to back, ${pairSeconds} s each, ${pairs} pairs, which goes first alternating`);
    const wsOursRun = wsPeers.find((p) => p.name === 'ours')!;
    const wsChpRun = wsPeers.find((p) => p.name === 'CHP 5.3')!;
    const wsPairRuns: Record<'ours' | 'chp', WsRun[]> = { ours: [], chp: [] };
    const wsCpuPairs = await inPairs(
      'ours',
      'chp',
      async (peer) => {
        const run = await measure(peer === 'ours' ? wsOursRun : wsChpRun, { connections: 50, messageBytes: 128, seconds: pairSeconds });
        wsPairRuns[peer].push(run);
        return run.cpuUsPerMsg;
      },
      'µs CPU/msg',
    );
    const wsRatePairs = wsCpuPairs.map((_, i) => {
      const ours = wsPairRuns.ours[i]!.messagesPerSec;
      const chp = wsPairRuns.chp[i]!.messagesPerSec;
      return { ours: round(ours, 0), chp: round(chp, 0), ratio: round(ours / chp, 3) };
    });
    say(`  msg/s, ours against CHP, pair by pair: ${wsRatePairs.map((p) => `${p.ratio}x`).join(' ')}`);
    say('\nWebSocket 1 MiB messages: 4 connections, at most 200 messages each peer');
    for (const p of wsPeers) {
      p.big = await measure(p, { connections: 4, messageBytes: 1024 * 1024, seconds, maxMessages: 200 });
      say(`  ${p.name.padEnd(18)} ${p.big.received}/${p.big.sent} echoed  ${p.big.messagesPerSec.toFixed(0)} msg/s  lost ${p.big.lost} altered ${p.big.altered} failures ${p.big.failures}`);
    }
    const ws = wsPeers.map((p) => ({
      name: p.name,
      messagesPerSec: round(median(p.runs.map((x) => x.messagesPerSec)), 0),
      cpuUsPerMsg: round(median(p.runs.map((x) => x.cpuUsPerMsg)), 2),
      lost: p.runs.reduce((s, x) => s + x.lost, 0),
      altered: p.runs.reduce((s, x) => s + x.altered, 0),
      failures: p.runs.reduce((s, x) => s + x.failures, 0),
      echoed: p.runs.reduce((s, x) => s + x.received, 0),
      runs: p.runs.map((x) => ({ messagesPerSec: round(x.messagesPerSec, 0), cpuUsPerMsg: round(x.cpuUsPerMsg, 2), load: x.load })),
      big: p.big && { sent: p.big.sent, received: p.big.received, lost: p.big.lost, altered: p.big.altered, failures: p.big.failures, messagesPerSec: round(p.big.messagesPerSec, 1), cpuUsPerMsg: round(p.big.cpuUsPerMsg, 0), load: p.big.load },
    }));
    const wsGet = (name: string) => ws.find((w) => w.name === name)!;
    const wsChp = wsGet('CHP 5.3');
    const wsNg = wsGet('nginx');
    printTable(
      "WebSocket (medians over rounds; CPU = the proxy process's utime+stime per echoed message; nginx proxies one `location /`)",
      ['path', 'msg/s', 'µs CPU/msg', 'x CHP msg/s', 'x CHP CPU', 'x nginx CPU', 'lost', 'altered', '1 MiB echoed', '1 MiB lost+altered', 'msg/s per round', 'µs CPU/msg per round'],
      ws.map((w) => [w.name, w.messagesPerSec, w.cpuUsPerMsg, w.messagesPerSec / wsChp.messagesPerSec, w.cpuUsPerMsg / wsChp.cpuUsPerMsg, w.cpuUsPerMsg / wsNg.cpuUsPerMsg, w.lost, w.altered, `${w.big?.received}/${w.big?.sent}`, (w.big?.lost ?? 0) + (w.big?.altered ?? 0), w.runs.map((x) => x.messagesPerSec).join(' / '), w.runs.map((x) => x.cpuUsPerMsg).join(' / ')]),
    );

    // ---------- churn ----------
    say(`\nChurn: ${churnPerMode} WebSockets closed each way (${CHURN_MODES.join(', ')}), then ${churnPerMode} abandoned HTTP requests`);
    const churnUpstream = await startChurnUpstream();
    let churn;
    try {
      const proc = track(await startChpLike('ours', 'ours churn', deadTarget));
      await addRoutes(proc.apiUrl, proxyToken, ['/user/churn'], churnUpstream.url);
      await churnSocket(`${proc.url.replace('http', 'ws')}/user/churn/ws`, 'client-close');
      await fetch(`${proc.url}/user/churn/x`).then((r) => r.text());
      await sleep(800); // idle keep-alive sockets to the upstream expire (its keepAliveTimeout is 300 ms)
      const start = loadMark();
      const before = { fds: fdCount(proc.pid), rssMiB: round(rssMiB(proc.pid), 1) };
      const t0 = Date.now();
      const counts = await runChurn(proc.url, '/user/churn', churnPerMode, churnPerMode);
      const churnSeconds = (Date.now() - t0) / 1000;
      let fds = fdCount(proc.pid);
      for (let waited = 0; fds > before.fds && waited < 15_000; waited += 200) {
        await sleep(200);
        fds = fdCount(proc.pid);
      }
      const after = { fds, rssMiB: round(rssMiB(proc.pid), 1) };
      const load = loadSince(start);
      const opened = Object.values(counts.exchanged).reduce((a, b) => a + b, 0);
      churn = { websockets: CHURN_MODES.length * churnPerMode, opened, exchanged: counts.exchanged, aborted: counts.aborted, seconds: round(churnSeconds, 1), before, after, load };
      say(`  ${opened}/${churn.websockets} WebSockets opened and echoed; fds ${before.fds} -> ${after.fds}; RSS ${before.rssMiB} -> ${after.rssMiB} MiB; ${churnSeconds.toFixed(1)} s; ${describeLoad(load)}`);
      await proc.stop();
    } finally {
      await churnUpstream.close();
    }

    // ---------- goals ----------
    const ours = peers.find((p) => p.name === 'ours')!;
    const chpPeer = peers.find((p) => p.name === 'CHP 5.3')!;
    const o10 = get('ours@10');
    const o100k = get('ours@100k');
    const rel = o100k.reqPerSec / o10.reqPerSec;
    const wsOurs = wsGet('ours');
    const wsOursPeer = wsPeers.find((p) => p.name === 'ours')!;
    const wsChpPeer = wsPeers.find((p) => p.name === 'CHP 5.3')!;
    const wsRoundRatios = wsOursPeer.runs.map((x, i) => x.messagesPerSec / wsChpPeer.runs[i]!.messagesPerSec);
    const wsPairRatios = wsRatePairs.map((p) => p.ratio);
    const goals: Goal[] = [
      goalOverRounds('req/s >= 3x CHP at 10,000 routes (pairs)', httpPairs.map((p) => p.ratio), '>=', 3, 'x', `pairs' medians ${median(httpPairs.map((p) => p.ours))} vs ${median(httpPairs.map((p) => p.chp))} req/s; over the rounds ${round(median(ours.runs.map((x, i) => x.reqPerSec / chpPeer.runs[i]!.reqPerSec)))}x`),
      { name: 'p99 below CHP', met: get('ours').p99Ms < chp.p99Ms, detail: `${get('ours').p99Ms} ms vs ${chp.p99Ms} ms; rounds ${ours.runs.map((x, i) => `${round(x.p99Ms)}/${round(chpPeer.runs[i]!.p99Ms)}`).join(', ')} ms` },
      goalOverRounds('100,000 routes within 5% of 10 routes (pairs)', routesPairs.map((p) => p.ratio), '>=', 0.95, 'x', `pairs' medians ${median(routesPairs.map((p) => p.at100k))} vs ${median(routesPairs.map((p) => p.at10))} req/s; over the rounds ${o100k.reqPerSec} vs ${o10.reqPerSec} req/s (x${round(rel, 3)})`),
      { name: 'RSS at 100,000 routes < 150 MB', met: o100k.rssMiB * 1.048576 < 150, detail: `${o100k.rssMiB} MiB (${round(o100k.rssMiB * 1.048576, 1)} MB)` },
      { name: 'WebSocket msg/s >= CHP in every round and every pair', met: wsRoundRatios.every((r) => r >= 1) && wsPairRatios.every((r) => r >= 1), detail: `median ${wsOurs.messagesPerSec} vs ${wsChp.messagesPerSec}; rounds x${wsRoundRatios.map((r) => round(r)).join(', x')}; pairs x${wsPairRatios.map((r) => round(r)).join(', x')} (median x${round(median(wsPairRatios))})` },
      goalOverRounds('WebSocket CPU/msg <= 0.7x CHP (pairs)', wsCpuPairs.map((p) => p.ratio), '<=', 0.7, 'x', `pairs' medians ${median(wsCpuPairs.map((p) => p.ours))} vs ${median(wsCpuPairs.map((p) => p.chp))} µs; over the rounds ${round(median(wsOursPeer.runs.map((x, i) => x.cpuUsPerMsg / wsChpPeer.runs[i]!.cpuUsPerMsg)))}x; nginx ${wsNg.cpuUsPerMsg} µs`),
      { name: 'churn: descriptors back to baseline, every WebSocket opened', met: churn.after.fds <= churn.before.fds && churn.opened === churn.websockets, detail: `fds ${churn.before.fds} -> ${churn.after.fds}, ${churn.opened}/${churn.websockets} opened; RSS ${churn.before.rssMiB} -> ${churn.after.rssMiB} MiB` },
      { name: 'no lost or altered WebSocket message (incl. 1 MiB)', met: wsOurs.lost + wsOurs.altered + wsOurs.failures === 0 && !!wsOurs.big && wsOurs.big.lost + wsOurs.big.altered + wsOurs.big.failures === 0 && wsOurs.big.received > 0, detail: `lost ${wsOurs.lost}, altered ${wsOurs.altered}, failures ${wsOurs.failures} of ${wsOurs.echoed}; 1 MiB: ${wsOurs.big?.received}/${wsOurs.big?.sent} echoed, altered ${wsOurs.big?.altered}` },
    ];
    printGoals(goals);

    writeResults('proxy', {
      bench: 'proxy',
      date: new Date().toISOString(),
      seconds: round((Date.now() - started) / 1000, 1),
      settings: { rounds, secondsPerRun: seconds, pairs, pairSeconds, routes: ROUTES, bigRoutes: BIG, wrk: { connections: 50, threads: 2 }, ws: { connections: 50, messageBytes: 128 }, churnPerMode },
      http,
      httpPairs,
      routesPairs,
      websocket: ws,
      websocketPairs: wsCpuPairs.map((p, i) => ({ cpuUsPerMsg: { ours: p.ours, chp: p.chp, ratio: p.ratio }, messagesPerSec: wsRatePairs[i], load: p.load })),
      churn,
      goals,
    }, loadAtStart);
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

await main();
