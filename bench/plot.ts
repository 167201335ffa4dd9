/**
 * Draws docs/claim-latency.svg from bench/results/claim.json: the distribution of claim latency
 * (request to 302 with the route live) for nbpool and the original tmpnb + CHP, every round of one
 * run pooled, sequential claims and 60 at once side by side, with the plain request through the
 * same hops as a dashed line. Written by hand (no chart package): one cumulative curve per series
 * on a log time axis. Usage: node --import tsx bench/plot.ts [results.json] [out.svg]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './lib/peers.js';

interface PeerRound {
  sequential: { claimMs: number[]; controlMs: number[] };
  burst: { claimMs: number[]; controlMs: number[] };
}

interface ClaimResults {
  date: string;
  settings: { rounds: number; sequentialClaims: number; burstClaims: number };
  peers: { nbpool: PeerRound[]; tmpnb: PeerRound[] };
  machine?: { cpus: number; loadavg1mAtStart: number; loadavg1mAtEnd: number };
}

interface Series {
  label: string;
  color: string;
  dashed: boolean;
  values: number[];
}

const width = 920;
const height = 450;
const panel = { top: 70, bottom: 90, left: 60, gap: 50 };
const panelWidth = (width - panel.left - panel.gap - 30) / 2;
const panelHeight = height - panel.top - panel.bottom;

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (v >= 1 ? String(Number(v.toPrecision(3))) : String(Number(v.toPrecision(2))));

/** Ticks 1-2-5 per decade covering [lo, hi]. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** e;
      if (t >= lo && t <= hi) ticks.push(Number(t.toPrecision(1)));
    }
  }
  return ticks;
}

/** One panel: cumulative share of requests answered within x ms, x on a log scale. */
function drawPanel(x0: number, title: string, series: Series[], lo: number, hi: number): string {
  const sx = (v: number) => x0 + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * panelWidth;
  const sy = (share: number) => panel.top + (1 - share) * panelHeight;
  const out: string[] = [];
  out.push(`<text x="${x0 + panelWidth / 2}" y="${panel.top - 12}" text-anchor="middle" font-weight="bold">${escapeXml(title)}</text>`);
  for (const share of [0, 0.25, 0.5, 0.75, 0.9, 1]) {
    out.push(`<line x1="${x0}" x2="${x0 + panelWidth}" y1="${sy(share)}" y2="${sy(share)}" stroke="#ddd"/>`);
    out.push(`<text x="${x0 - 6}" y="${sy(share) + 4}" text-anchor="end" font-size="11">${share * 100}%</text>`);
  }
  for (const t of logTicks(lo, hi)) {
    out.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${panel.top}" y2="${panel.top + panelHeight}" stroke="#eee"/>`);
    out.push(`<text x="${sx(t)}" y="${panel.top + panelHeight + 16}" text-anchor="middle" font-size="11">${fmt(t)}</text>`);
  }
  out.push(`<rect x="${x0}" y="${panel.top}" width="${panelWidth}" height="${panelHeight}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${x0 + panelWidth / 2}" y="${panel.top + panelHeight + 36}" text-anchor="middle" font-size="12">ms from request to answer (log scale)</text>`);
  for (const s of series) {
    if (s.values.length === 0) continue;
    const sorted = [...s.values].sort((a, b) => a - b);
    const points = sorted.map((v, i) => `${sx(Math.max(v, lo)).toFixed(1)},${sy((i + 1) / sorted.length).toFixed(1)}`);
    const start = `${sx(Math.max(sorted[0]!, lo)).toFixed(1)},${sy(0).toFixed(1)}`;
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''} points="${start} ${points.join(' ')}"/>`);
  }
  return out.join('\n');
}

function main(): void {
  const input = process.argv[2] ?? join(repoRoot, 'bench', 'results', 'claim.json');
  const output = process.argv[3] ?? join(repoRoot, 'docs', 'claim-latency.svg');
  const r = JSON.parse(readFileSync(input, 'utf8')) as ClaimResults;
  if (!r.peers?.nbpool?.length) throw new Error(`${input} holds no nbpool rounds (written by an older bench:claim?)`);
  const pooled = (rounds: PeerRound[], f: (p: PeerRound) => number[]) => rounds.flatMap(f);
  const panels: { title: string; series: Series[] }[] = [
    {
      title: `${r.settings.sequentialClaims} sequential claims a round`,
      series: [
        { label: 'nbpool up: claim', color: '#1f6fd1', dashed: false, values: pooled(r.peers.nbpool, (p) => p.sequential.claimMs) },
        { label: 'tmpnb + CHP 5.3: claim', color: '#e07b00', dashed: false, values: pooled(r.peers.tmpnb, (p) => p.sequential.claimMs) },
        { label: 'nbpool up: plain request, same hops', color: '#1f6fd1', dashed: true, values: pooled(r.peers.nbpool, (p) => p.sequential.controlMs) },
        { label: 'tmpnb + CHP: plain request, same hops', color: '#e07b00', dashed: true, values: pooled(r.peers.tmpnb, (p) => p.sequential.controlMs) },
      ],
    },
    {
      title: `${r.settings.burstClaims} claims at once (nbpool refills meanwhile)`,
      series: [
        { label: 'nbpool up: claim', color: '#1f6fd1', dashed: false, values: pooled(r.peers.nbpool, (p) => p.burst.claimMs) },
        { label: 'tmpnb + CHP 5.3: claim', color: '#e07b00', dashed: false, values: pooled(r.peers.tmpnb, (p) => p.burst.claimMs) },
        { label: 'nbpool up: plain request, same hops', color: '#1f6fd1', dashed: true, values: pooled(r.peers.nbpool, (p) => p.burst.controlMs) },
        { label: 'tmpnb + CHP: plain request, same hops', color: '#e07b00', dashed: true, values: pooled(r.peers.tmpnb, (p) => p.burst.controlMs) },
      ],
    },
  ];
  const all = panels.flatMap((p) => p.series.flatMap((s) => s.values)).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...all)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all)));
  const machine = r.machine ? `, load average ${r.machine.loadavg1mAtStart} → ${r.machine.loadavg1mAtEnd} on ${r.machine.cpus} CPUs` : '';
  const legend = panels[0]!.series
    .filter((s) => s.values.length > 0)
    .map((s, i) => {
      // two columns: claims on the first row, plain requests on the second
      const x = panel.left + (i % 2) * (panelWidth + panel.gap);
      const y = height - 34 + Math.floor(i / 2) * 18;
      return `<line x1="${x}" x2="${x + 28}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/><text x="${x + 34}" y="${y + 4}" font-size="12">${escapeXml(s.label)}</text>`;
    });
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Claim latency: share of claims answered (302, route live) within x ms</text>`,
    `<text x="${width / 2}" y="40" text-anchor="middle" font-size="11" fill="#555">bench:claim ${escapeXml(r.date.slice(0, 16).replace('T', ' '))} UTC, ${r.settings.rounds} rounds pooled, tiny image${escapeXml(machine)}${r.peers.tmpnb.length ? '' : '; tmpnb not measured'}</text>`,
    ...panels.map((p, i) => drawPanel(panel.left + i * (panelWidth + panel.gap), p.title, p.series, lo, hi)),
    ...legend,
    '</svg>',
  ].join('\n');
  writeFileSync(output, svg + '\n');
  process.stdout.write(`wrote ${output}\n`);
}

main();
