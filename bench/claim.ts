/**
 * bench:claim (issue 8). Side by side in one run: cold `docker run` of the tiny image until it
 * answers, the engine's own start rate through its API (8 at a time), and, when the orchestrator
 * is built, claims through proxy + orchestrator. Env: BENCH_COLD (10 cold runs), BENCH_ENGINE (24).
 */
import { randomBytes } from 'node:crypto';
import { coldDockerRun, engine, engineStartRate, removeLabelled, TINY_IMAGE } from './lib/docker-bench.js';
import { ourProgramExists } from './lib/peers.js';
import { median, percentile, printGoals, printTable, round, writeResults, type Goal } from './lib/stats.js';

const coldRuns = Number(process.env.BENCH_COLD ?? 10);
const engineCount = Number(process.env.BENCH_ENGINE ?? 24);
const runId = `bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const label = `nbpool.bench=${runId}`;

function say(msg: string): void {
  process.stdout.write(msg + '\n');
}

async function main(): Promise<void> {
  const started = Date.now();
  await engine.getImage(TINY_IMAGE).inspect();
  try {
    say(`cold docker run of ${TINY_IMAGE} until it answers, ${coldRuns} times (label ${label})`);
    const cold: number[] = [];
    for (let i = 0; i < coldRuns; i++) cold.push(await coldDockerRun(label, i));
    say(`  ${cold.map((ms) => ms.toFixed(0)).join(' ')} ms`);
    await removeLabelled(label);

    say(`engine start rate: ${engineCount} create+start through the API, 8 at a time`);
    const engineRate = await engineStartRate(label, engineCount, 8);
    say(`  ${engineRate.toFixed(2)} containers/s`);
    await removeLabelled(label);

    const coldP50 = median(cold);
    const rows: (string | number)[][] = [
      ['cold docker run to first answer p50', round(coldP50, 1), 'ms'],
      ['cold docker run p99 (max of few)', round(percentile(cold, 99), 1), 'ms'],
      ['engine start rate, 8 at a time', round(engineRate, 2), 'containers/s'],
    ];
    const goals: Goal[] = [];
    const haveOrchestrator = ourProgramExists('orchestrator');
    if (!haveOrchestrator) say('nbpool orchestrator is not built or not implemented yet: cold-start side only');
    printTable('Claim bench', ['measure', 'value', 'unit'], rows);
    if (goals.length) printGoals(goals);
    else say('\nGoals: not judged (nbpool orchestrator not available yet)');
    writeResults('claim', {
      bench: 'claim',
      date: new Date().toISOString(),
      seconds: round((Date.now() - started) / 1000, 1),
      cold: { runs: cold.map((x) => round(x, 1)), p50Ms: round(coldP50, 1) },
      engine: { containers: engineCount, parallel: 8, perSecond: round(engineRate, 2) },
      orchestratorMeasured: haveOrchestrator,
      goals,
    });
  } finally {
    const n = await removeLabelled(label);
    if (n) say(`removed ${n} leftover containers`);
  }
}

await main();
