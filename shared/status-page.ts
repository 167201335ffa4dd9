/**
 * The operator status page served on the orchestrator's and the redirector's admin ports: one
 * self-contained HTML document (no external assets, so it works on an offline host) that polls the
 * program's JSON once a second and draws it. Numbers people would rather see than read are drawn:
 * pool levels (or node room) over the last minutes.
 *
 * The page reads `historyPath`, which answers `{ samples: StatusSample[] }` (oldest first), and
 * `statsPath` for the current figures. An admin token may be given in the URL fragment
 * (`#token=...`); it is sent as `Authorization: token ...` and never leaves the browser otherwise.
 */
import { escapeHtml } from './html.js';

/** One point of the history the page draws; both programs produce this shape. */
export interface StatusSample {
  /** Milliseconds since the epoch. */
  t: number;
  /** Per series (a pool, or a node) the levels to stack: e.g. warm / claimed / starting / waiting. */
  levels: Record<string, Record<string, number>>;
  /** Per series values drawn as dashed lines over the stack, e.g. a pool's target. */
  lines?: Record<string, Record<string, number>>;
  /** Figures of the interval ending at `t`, e.g. claims, claim_p50_ms, claim_p99_ms, culls. */
  figures: Record<string, number>;
}

export interface StatusPageOptions {
  title: string;
  historyPath: string;
  statsPath: string;
}


export function statusPageHtml({ title, historyPath, statsPath }: StatusPageOptions): string {
  const config = JSON.stringify({ historyPath, statsPath }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  :root { --fg:#1d2330; --muted:#6b7280; --bg:#f7f7f8; --card:#fff; --line:#e5e7eb;
          --warm:#16a34a; --claimed:#2563eb; --starting:#f59e0b; --waiting:#dc2626; --room:#0ea5e9; }
  body { font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 0; padding: 20px; }
  h1 { font-size: 20px; margin: 0 0 4px; } .sub { color: var(--muted); margin-bottom: 16px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; margin-bottom: 16px; }
  .tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
  .tile .v { font-size: 26px; font-weight: 600; } .tile .k { color: var(--muted); font-size: 12px; text-transform: uppercase; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px; margin-bottom: 16px; }
  .card h2 { font-size: 15px; margin: 0 0 8px; } svg { width: 100%; height: 180px; display: block; }
  table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
  th { color: var(--muted); font-weight: 500; font-size: 12px; text-transform: uppercase; }
  .legend span { margin-right: 14px; } .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
  .up { color: var(--warm); } .down { color: var(--waiting); } .draining { color: var(--starting); }
  #error { color: var(--waiting); min-height: 1.4em; }
</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<div class="sub">live, updated every second &middot; <span id="updated">connecting…</span></div>
<div id="error"></div>
<div class="grid" id="tiles"></div>
<div id="charts"></div>
<div class="card"><h2 id="table-title">Details</h2><table id="table"></table></div>
<script>
const CONFIG = ${config};
const COLORS = { warm: 'var(--warm)', claimed: 'var(--claimed)', starting: 'var(--starting)', waiting: 'var(--waiting)', room: 'var(--room)' };
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const headers = token ? { Authorization: 'token ' + token } : {};
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
const color = (k, i) => COLORS[k] || ['#7c3aed', '#db2777', '#0d9488', '#64748b'][i % 4];

async function getJson(path) {
  const res = await fetch(path, { headers, cache: 'no-store' });
  if (!res.ok) throw new Error(path + ' answered ' + res.status);
  return res.json();
}

function tile(k, v) { return '<div class="tile"><div class="k">' + esc(k) + '</div><div class="v">' + esc(v) + '</div></div>'; }

/** Stacked area chart of one series' levels over time, with its lines (a pool's target) dashed over it, as inline SVG. */
function chart(name, samples) {
  const W = 800, H = 180, P = 24;
  const keys = [], lineKeys = [];
  for (const s of samples) for (const k of Object.keys((s.levels[name]) || {})) if (!keys.includes(k)) keys.push(k);
  for (const s of samples) for (const k of Object.keys((s.lines || {})[name] || {})) if (!lineKeys.includes(k)) lineKeys.push(k);
  const lineOf = (s, k) => ((s.lines || {})[name] || {})[k];
  const totals = samples.map((s) => keys.reduce((a, k) => a + ((s.levels[name] || {})[k] || 0), 0));
  const max = Math.max(1, ...totals, ...samples.flatMap((s) => lineKeys.map((k) => lineOf(s, k) || 0)));
  const t0 = samples.length ? samples[0].t : 0, t1 = samples.length ? samples[samples.length - 1].t : 1;
  const x = (t) => P + (W - 2 * P) * (t1 === t0 ? 1 : (t - t0) / (t1 - t0));
  const y = (v) => H - P - (H - 2 * P) * (v / max);
  let base = samples.map(() => 0), paths = '';
  keys.forEach((k, i) => {
    const top = samples.map((s, j) => base[j] + ((s.levels[name] || {})[k] || 0));
    if (samples.length) {
      const upper = samples.map((s, j) => x(s.t).toFixed(1) + ',' + y(top[j]).toFixed(1));
      const lower = samples.map((s, j) => x(s.t).toFixed(1) + ',' + y(base[j]).toFixed(1)).reverse();
      paths += '<polygon fill="' + color(k, i) + '" fill-opacity="0.75" points="' + upper.concat(lower).join(' ') + '"><title>' + esc(k) + '</title></polygon>';
    }
    base = top;
  });
  lineKeys.forEach((k) => {
    const points = samples.filter((s) => lineOf(s, k) !== undefined).map((s) => x(s.t).toFixed(1) + ',' + y(lineOf(s, k)).toFixed(1));
    if (points.length) paths += '<polyline fill="none" stroke="var(--fg)" stroke-width="1.5" stroke-dasharray="5 3" points="' + points.join(' ') + '"><title>' + esc(k) + '</title></polyline>';
  });
  const minutes = ((t1 - t0) / 60000).toFixed(1);
  const axis = '<line x1="' + P + '" y1="' + (H - P) + '" x2="' + (W - P) + '" y2="' + (H - P) + '" stroke="#9ca3af"/>' +
    '<text x="' + P + '" y="' + (H - 6) + '" font-size="11" fill="#6b7280">-' + minutes + ' min</text>' +
    '<text x="' + (W - P) + '" y="' + (H - 6) + '" font-size="11" fill="#6b7280" text-anchor="end">now</text>' +
    '<text x="2" y="' + (P - 6) + '" font-size="11" fill="#6b7280">' + max + '</text>';
  const newest = samples.length ? samples[samples.length - 1] : undefined;
  const legend = keys.map((k, i) => '<span><i style="background:' + color(k, i) + '"></i>' + esc(k) + ' ' + ((newest ? (newest.levels[name] || {})[k] : 0) || 0) + '</span>').join('') +
    lineKeys.map((k) => '<span><i style="background:none;border-top:2px dashed var(--fg);height:0;vertical-align:middle"></i>' + esc(k) + ' ' + ((newest && lineOf(newest, k)) || 0) + '</span>').join('');
  return '<div class="card" data-series="' + esc(name) + '"><h2>' + esc(name) + '</h2><div class="legend">' + legend + '</div>' +
    '<svg viewBox="0 0 ' + W + ' ' + H + '" preserveAspectRatio="none">' + axis + paths + '</svg></div>';
}

function ms(v) { return v === undefined ? '–' : v < 10 ? v.toFixed(2) : Math.round(v); }

/** The latest value of a figure, from the newest sample that has it (latencies only exist where claims were). */
function last(samples, key) {
  for (let i = samples.length - 1; i >= 0; i--) if (samples[i].figures[key] !== undefined) return samples[i].figures[key];
  return undefined;
}

function sumOver(samples, key, ms) {
  const since = Date.now() - ms;
  return samples.filter((s) => s.t >= since).reduce((a, s) => a + (s.figures[key] || 0), 0);
}

function render(stats, samples) {
  const tiles = [];
  if (stats.pools) {
    tiles.push(tile('warm (available)', stats.available), tile('claimed', stats.claimed), tile('starting', stats.starting),
      tile('waiting', stats.waiting), tile('room', stats.room + ' / ' + stats.capacity),
      tile('claims / min', sumOver(samples, 'claims', 60000)),
      tile('claim p50 / p99', ms(last(samples, 'claim_p50_ms')) + ' / ' + ms(last(samples, 'claim_p99_ms')) + ' ms'),
      tile('culled / 10 min', sumOver(samples, 'culls', 600000)));
    document.getElementById('table-title').textContent = 'Pools';
    const pct = (v) => (v === null || v === undefined ? '–' : Math.round(v * 1000) / 10 + '%');
    document.getElementById('table').innerHTML = '<tr><th>pool</th><th>image</th><th>size</th><th>warm</th><th>claimed</th><th>starting</th><th>waiting</th><th>hit rate 10 min</th><th>waits 10 min</th><th>failures</th><th>state</th></tr>' +
      Object.entries(stats.pools).map(([n, p]) => '<tr><td>' + esc(n) + '</td><td>' + esc(p.image) + '</td><td>' + p.size + (p.auto ? ' (auto)' : '') + '</td><td>' + p.warm + '</td><td>' + p.claimed +
        '</td><td>' + p.starting + '</td><td>' + p.waiting + '</td><td>' + pct(p.hit_rate_10m) + '</td><td>' + (p.waits_10m ?? '–') + '</td><td>' + p.failures + '</td><td>' + (p.draining ? '<span class="draining">draining</span>' : p.backoff_until ? '<span class="down">backing off</span>' : p.refill_paused ? '<span class="draining">refill paused for claims</span>' : '<span class="up">ok</span>') +
        (p.last_failure ? ' <span class="down">' + esc(p.last_failure) + '</span>' : '') + '</td></tr>').join('');
  } else if (stats.nodes) {
    const t = stats;
    tiles.push(tile('nodes up', stats.nodes.filter((n) => n.up).length + ' / ' + stats.nodes.length), tile('room', t.room ?? '–'),
      tile('available', t.available ?? '–'), tile('capacity', t.capacity ?? '–'), tile('sent / min', sumOver(samples, 'sent', 60000)));
    document.getElementById('table-title').textContent = 'Nodes';
    document.getElementById('table').innerHTML = '<tr><th>node</th><th>url</th><th>state</th><th>room</th><th>available</th><th>capacity</th><th>last poll</th><th>error</th></tr>' +
      stats.nodes.map((n) => '<tr><td>' + esc(n.id) + '</td><td>' + esc(n.url) + '</td><td>' + (n.draining ? '<span class="draining">draining</span>' : n.up ? '<span class="up">up</span>' : '<span class="down">down</span>') +
        '</td><td>' + (n.room ?? '–') + '</td><td>' + (n.available ?? '–') + '</td><td>' + (n.capacity ?? '–') + '</td><td>' + esc(n.last_poll || '–') + '</td><td>' + esc(n.error || '') + '</td></tr>').join('');
  }
  document.getElementById('tiles').innerHTML = tiles.join('');
  const names = [];
  for (const s of samples) for (const n of Object.keys(s.levels)) if (!names.includes(n)) names.push(n);
  document.getElementById('charts').innerHTML = names.map((n) => chart(n, samples)).join('');
}

async function tick() {
  try {
    const [stats, history] = await Promise.all([getJson(CONFIG.statsPath), getJson(CONFIG.historyPath)]);
    render(stats, history.samples || []);
    document.getElementById('error').textContent = '';
    document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (err) {
    document.getElementById('error').textContent = 'cannot read status: ' + err.message;
  }
}
tick();
setInterval(tick, 1000);
</script>
</body></html>
`;
}
