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
  const [pool] = config.pools;
  assert.equal(pool!.image, DEFAULT_IMAGE);
  assert.equal(pool!.command, DEFAULT_COMMAND);
  assert.equal(config.capacity, 9);
  assert.deepEqual(config.pools.map((p) => [p.name, p.size, p.redirectUri, p.probePath, p.stripPrefix, p.entryPath, p.auto]), [['default', 4, '/tree', 'api', false, '/', undefined]]);
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
    [{ lab: { preset: 'rstudio' } }, /pools.lab.preset must be one of jupyter, shiny, generic/],
    [{ lab: { preset: 'generic' } }, /pools.lab.image is needed/],
    [{ lab: { size: 'many' } }, /pools.lab.size must be an integer >= 0 or "auto"/],
    [{ lab: { size: 'auto', min: 5, max: 2 } }, /max \(2\) is below min \(5\)/],
    [{ lab: { hitRate: 1.5 } }, /hitRate must be a number >= 0.5 and <= 0.999/],
    [{ lab: { entryPath: '/api/x' } }, /taken by the orchestrator/],
    [{ lab: { entryPath: '/a b' } }, /must be a path such as/],
    [{ a: { entryPath: '/x' }, b: { entryPath: '/x/' } }, /pools a and b have the same entryPath \/x\//],
    [{ lab: { stripPrefix: 'yes' } }, /stripPrefix must be true or false/],
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

test('--host-directories: host:container[:options] as Docker takes them, anything else refused at start', () => {
  assert.deepEqual(load(['--host-directories', '/srv/data:/data:ro,/srv/x:/x,shared-vol:/home/nb:rw']).hostDirectories, ['/srv/data:/data:ro', '/srv/x:/x', 'shared-vol:/home/nb:rw']);
  for (const [bind, why] of [
    ['/srv/data', /needs host:container/],
    ['/srv/data:data', /container side must be an absolute path/],
    [':/data', /host side must be an absolute path or a volume name/],
    ['../up:/data', /host side must be an absolute path or a volume name/],
    ['/srv/data:/data:rw:x', /more than host:container:options/],
    ['/srv/data:/data:readonly', /options are among ro, rw/],
  ] as const) {
    assert.throws(() => load(['--host-directories', bind]), (err: Error) => err instanceof ConfigError && err.message.startsWith('--host-directories') && why.test(err.message), bind);
  }
});

test("activity_ignore per pool: the preset's polls (Jupyter's), or the pool's own list, checked at start", () => {
  const config = load([], { dash: { preset: 'generic', image: 'dash:1', activityIgnore: ['^/_dash-update-component$'] }, shiny: { preset: 'shiny' } });
  const [jupyter, dash, shiny] = config.pools;
  assert.ok(jupyter!.activityIgnore.some((p) => new RegExp(p).test('/api/sessions?_=1796013551885')), "Jupyter's session poll is named");
  assert.ok(!jupyter!.activityIgnore.some((p) => new RegExp(p).test('/api/contents/Untitled.ipynb')), 'a save is not');
  assert.deepEqual([dash!.activityIgnore, shiny!.activityIgnore], [['^/_dash-update-component$'], []]);
  assert.throws(() => load([], { dash: { preset: 'generic', image: 'dash:1', activityIgnore: ['('] } }), /pools.dash.activityIgnore entry "\(" is not a regular expression/);
  assert.throws(() => load([], { dash: { activityIgnore: '^/x' } }), /pools.dash.activityIgnore must be a list/);
});

test('presets: a pool of a new kind is three lines of config; explicit settings win', () => {
  const config = load(['--max-containers', '40', '--cpu-shares', '256'], {
    shiny: { preset: 'shiny', image: 'nbpool/shiny', size: 2 },
    dash: { preset: 'generic', image: 'dash:1', port: 8050, probePath: 'health', entryPath: '/apps/dash' },
    nb: { preset: 'jupyter', size: 'auto', min: 2 },
  });
  const [, shiny, dash, nb] = config.pools;
  assert.deepEqual(
    [shiny!.image, shiny!.command, shiny!.size, shiny!.redirectUri, shiny!.probePath, shiny!.stripPrefix, shiny!.noun, shiny!.entryPath, shiny!.port, shiny!.cpuShares],
    ['nbpool/shiny', '', 2, '/', '', true, 'app', '/shiny/', 8888, 256],
  );
  assert.deepEqual([dash!.port, dash!.probePath, dash!.entryPath, dash!.stripPrefix, dash!.size], [8050, 'health', '/apps/dash/', true, 2]);
  assert.deepEqual([nb!.command, nb!.noun, nb!.size, nb!.auto], [DEFAULT_COMMAND, 'notebook', 2, { min: 2, max: 4, hitRate: 0.95 }]);
  // The default pool's preset from the flag; --image is needed for generic.
  const flags = load(['--preset', 'shiny', '--pool-size', 'auto', '--pool-min', '0', '--pool-max', '7', '--target-hit-rate', '0.9']);
  assert.deepEqual(
    [flags.pools[0]!.image, flags.pools[0]!.command, flags.pools[0]!.stripPrefix, flags.pools[0]!.auto],
    ['nbpool/shiny:latest', '', true, { min: 0, max: 7, hitRate: 0.9 }],
  );
  assert.throws(() => load(['--preset', 'generic']), /--image is needed/);
  assert.throws(() => load(['--pool-size', 'lots']), /--pool-size: must be a whole number or auto/);
  assert.throws(() => load(['--preset', 'rstudio']), /--preset .* must be one of jupyter, shiny, generic/);
});

test('--entry-url also from NBPOOL_ENTRY_URL (docker-compose passes it); the flag wins; a bad one is a clear error', () => {
  const fromEnv = (env: NodeJS.ProcessEnv, argv: string[] = []) => {
    const loaded = loadOrchestratorConfig(argv, env);
    assert.ok(!loaded.help);
    return loaded.config.entryUrl;
  };
  assert.equal(fromEnv({ NBPOOL_ENTRY_URL: 'https://notebooks.example/' }), 'https://notebooks.example/');
  assert.equal(fromEnv({ NBPOOL_ENTRY_URL: '' }), undefined, 'empty (compose\'s default) is unset');
  assert.equal(fromEnv({ NBPOOL_ENTRY_URL: 'https://a.example/' }, ['--entry-url', 'https://b.example/']), 'https://b.example/');
  assert.throws(() => fromEnv({ NBPOOL_ENTRY_URL: 'not a url' }), /NBPOOL_ENTRY_URL/);
});
