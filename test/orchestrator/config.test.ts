/** The orchestrator's configuration: sizes, default capacity, named pools from the config file. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultCapacity, DEFAULT_COMMAND, DEFAULT_IMAGE, loadOrchestratorConfig, parseSize } from '../../orchestrator/config.js';
import { ConfigError } from '../../shared/errors.js';
import { fillPlaceholders, splitCommand } from '../../orchestrator/spec.js';

function load(argv: string[], pools?: unknown) {
  const args = [...argv];
  if (pools !== undefined) {
    const file = join(mkdtempSync(join(tmpdir(), 'nbpool-orch-')), 'config.json');
    writeFileSync(file, JSON.stringify({ poolSize: 2, pools }));
    args.push('--config', file);
  }
  const loaded = loadOrchestratorConfig(args, {});
  assert.ok(!loaded.help);
  return loaded.config;
}

test('sizes and the default capacity from host memory', () => {
  assert.equal(parseSize('512m', 'x'), 512 * 1024 ** 2);
  assert.equal(parseSize('2g', 'x'), 2 * 1024 ** 3);
  assert.equal(parseSize('1.5GiB', 'x'), 1.5 * 1024 ** 3);
  assert.throws(() => parseSize('lots', '--mem-limit'), ConfigError);
  assert.throws(() => parseSize('1k', '--mem-limit'), /at least 6m/);
  // 24 GiB host: reserve 2.4 GiB (10%), 512 MiB each.
  assert.equal(defaultCapacity(512 * 1024 ** 2, 24 * 1024 ** 3), Math.floor((24 - 2.4) * 2));
  // 4 GiB host: reserve 1 GiB (the minimum).
  assert.equal(defaultCapacity(1024 ** 3, 4 * 1024 ** 3), 3);
  assert.equal(defaultCapacity(8 * 1024 ** 3, 4 * 1024 ** 3), 1);
});

test('defaults: Jupyter image and command, tmpnb flag names, default pool from the flags', () => {
  const config = load(['--pool-size', '4', '--max-containers', '9']);
  assert.equal(config.image, DEFAULT_IMAGE);
  assert.equal(config.command, DEFAULT_COMMAND);
  assert.equal(config.capacity, 9);
  assert.deepEqual(config.pools.map((p) => [p.name, p.size, p.redirectUri]), [['default', 4, '/tree']]);
  assert.deepEqual(
    fillPlaceholders(splitCommand(DEFAULT_COMMAND), { base_path: '/user/x/', port: '8888', ip: '0.0.0.0', token: '' }).slice(-3),
    ['--port=8888', '--NotebookApp.base_url=/user/x/', '--NotebookApp.token='],
  );
  assert.deepEqual(splitCommand(`sh -c 'echo "a b"' x\\ y`), ['sh', '-c', 'echo "a b"', 'x y']);
  assert.throws(() => splitCommand("sh -c 'oops"), /unterminated/);
});

test('named pools inherit the flags and are validated with clear messages', () => {
  const config = load(['--image', 'base:1', '--mem-limit', '256m'], { lab: { image: 'lab:2', size: 1, redirectUri: '/lab', memLimit: '1g' }, plain: {} });
  const [def, lab, plain] = config.pools;
  assert.equal(def!.size, 2, 'poolSize from the file');
  assert.deepEqual([lab!.name, lab!.image, lab!.size, lab!.redirectUri, lab!.memoryBytes], ['lab', 'lab:2', 1, '/lab', 1024 ** 3]);
  assert.deepEqual([plain!.image, plain!.size, plain!.memoryBytes], ['base:1', 2, 256 * 1024 ** 2]);
  const bad: Array<[unknown, RegExp]> = [
    [[], /"pools" must be an object/],
    [{ 'a b': {} }, /pool names are letters/],
    [{ default: {} }, /"default" is the pool the flags define/],
    [{ lab: { colour: 'red' } }, /unknown setting "colour"/],
    [{ lab: { size: -1 } }, /pools.lab.size must be an integer >= 0/],
    [{ lab: { redirectUri: 'lab' } }, /redirectUri must start with \//],
    [{ lab: 3 }, /pools.lab must be an object/],
  ];
  for (const [pools, message] of bad) assert.throws(() => load([], pools), message);
});

test('capabilities given back per pool or by flag; --no-egress excludes --docker-network', () => {
  const config = load(['--cap-add', 'CHOWN,SETUID'], { lab: { capAdd: ['NET_BIND_SERVICE'] }, plain: {} });
  assert.deepEqual(config.pools.map((p) => p.capAdd), [['CHOWN', 'SETUID'], ['NET_BIND_SERVICE'], ['CHOWN', 'SETUID']]);
  assert.deepEqual(load([]).pools[0]!.capAdd, [], 'none by default');
  assert.throws(() => load(['--cap-add', 'chown']), /^ConfigError: --cap-add: capabilities are upper-case names/);
  assert.throws(() => load([], { lab: { capAdd: 'CHOWN' } }), /pools.lab.capAdd must be a list/);
  assert.throws(() => load(['--no-egress', '--docker-network', 'mine']), /--no-egress .* cannot be combined with --docker-network/);
});
