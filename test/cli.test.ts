import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const bin = new URL('../bin/nbpool.js', import.meta.url).pathname;

async function nbpool(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('nbpool --help lists the four subcommands', async () => {
  const { code, stdout } = await nbpool('--help');
  assert.equal(code, 0);
  for (const name of ['up', 'proxy', 'orchestrator', 'redirector']) assert.match(stdout, new RegExp(`^  ${name} `, 'm'));
});

test('every subcommand has its own --help', async () => {
  for (const name of ['up', 'proxy', 'orchestrator', 'redirector']) {
    const { code, stdout } = await nbpool(name, '--help');
    assert.equal(code, 0, name);
    assert.match(stdout, new RegExp(`Usage: nbpool ${name}`));
  }
});

test('an unknown command is a clear error with exit code 2', async () => {
  const { code, stderr } = await nbpool('launch');
  assert.equal(code, 2);
  assert.match(stderr, /unknown command "launch"/);
});
