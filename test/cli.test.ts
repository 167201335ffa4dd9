import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { freePort, waitFor } from './helpers/net.js';
import { selfSignedCert } from './proxy/helpers.js';

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

test('nbpool up takes every option of the proxy and of the orchestrator, but those it wires itself', async () => {
  const { upOptionSpecs } = await import('../cli/up.js');
  const { proxyOptionSpecs } = await import('../proxy/config.js');
  const { orchestratorOptionSpecs } = await import('../orchestrator/config.js');
  // The proxy's default target is the orchestrator, which up hands the proxy's routes in-process.
  const wired = ['defaultTarget', 'configproxyEndpoint', 'configproxyAuthToken'];
  const expected = [...Object.keys(proxyOptionSpecs), ...Object.keys(orchestratorOptionSpecs), 'orchestratorPort'].filter((key) => !wired.includes(key));
  assert.deepEqual(Object.keys(upOptionSpecs).sort(), [...new Set(expected)].sort());
  // Each with its program's own spec (help, environment variable, checks); --ip/--port are the public address.
  const specs: Record<string, unknown> = upOptionSpecs;
  for (const [key, spec] of Object.entries({ ...proxyOptionSpecs, ...orchestratorOptionSpecs })) {
    if (!wired.includes(key) && key !== 'ip' && key !== 'port') assert.equal(specs[key], spec, key);
  }
  const { stdout } = await nbpool('up', '--help');
  for (const flag of ['--no-include-prefix', '--custom-header', '--error-path', '--error-target', '--host-routing', '--pid-file', '--ssl-ca', '--pool-size']) {
    assert.match(stdout, new RegExp(`^  ${flag}\\b`, 'm'), flag);
  }
});

test('run as a program, bin/nbpool.js starts node with its flags, and the image runs node with the same ones', async () => {
  // As npx, npm start and a global install run it: through its own first line, not `node bin/nbpool.js`.
  const [port, apiPort] = [await freePort(), await freePort()];
  const child = spawn(bin, ['proxy', '--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort), '--log-level', 'warn'], {
    stdio: 'ignore',
    env: { ...process.env, CONFIGPROXY_AUTH_TOKEN: 'cli-test' },
  });
  try {
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // `env -S` replaces itself with node, so the child's pid is node's once the proxy answers.
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/_chp_healthz`)).ok || undefined, { timeoutMs: 15_000 });
    const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const flags = argv.slice(1, argv.indexOf(bin));
    assert.ok(flags.includes('--max-semi-space-size=8'), `node ran with ${JSON.stringify(argv)}`);
    const entrypoint = /^ENTRYPOINT (.*)$/m.exec(readFileSync(new URL('../deploy/Dockerfile', import.meta.url), 'utf8'))?.[1];
    assert.deepEqual(JSON.parse(entrypoint ?? 'null'), ['node', ...flags, '/app/bin/nbpool.js']);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    child.kill('SIGKILL');
  }
});

test('a file an option names that cannot be used is one line naming the option, exit code 2, never a stack trace', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-cli-'));
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, '-----BEGIN PRIVATE KEY-----\n');
  const [one, other] = [selfSignedCert(), selfSignedCert()];
  const listen = ['--ip', '127.0.0.1', '--port', '0', '--api-ip', '127.0.0.1', '--api-port', '0', '--log-level', 'error'];
  const cases: [string[], RegExp][] = [
    [['proxy', ...listen, '--ssl-key', join(dir, 'missing.key'), '--ssl-cert', one.cert], /^nbpool proxy: --ssl-key \S+missing\.key: no such file or directory$/],
    [['proxy', ...listen, '--ssl-key', one.key, '--ssl-cert', dir], /^nbpool proxy: --ssl-cert \S+: is a directory$/],
    [['proxy', ...listen, '--ssl-key', notPem, '--ssl-cert', notPem], /^nbpool proxy: --ssl-key \S+ with --ssl-cert \S+: not a usable key and certificate \(.*PEM.*\)$/],
    // Each file fine alone, but the key is not the certificate's.
    [['proxy', ...listen, '--ssl-key', one.key, '--ssl-cert', other.cert], /^nbpool proxy: --ssl-key .*: not a usable key and certificate \(.*mismatch.*\)$/],
    [['proxy', ...listen, '--pid-file', join(dir, 'no', 'such', 'dir', 'pid')], /^nbpool proxy: --pid-file \S+: no such file or directory$/],
    // A mistyped directory of error pages would otherwise serve the built-in ones without a word.
    [['proxy', ...listen, '--error-path', join(dir, 'pages')], /^nbpool proxy: --error-path \S+pages: no such file or directory$/],
    [['proxy', ...listen, '--error-path', notPem], /^nbpool proxy: --error-path \S+: not a directory$/],
    // Said before the route store is opened: not after waiting for a Redis that does not answer.
    [['proxy', ...listen, '--storage-backend', 'redis://127.0.0.1:9', '--error-path', notPem], /^nbpool proxy: --error-path \S+: not a directory$/],
    [['up', ...listen, '--ssl-key', join(dir, 'missing.key'), '--ssl-cert', one.cert], /^nbpool up: --ssl-key \S+: no such file or directory$/],
    // A journal under a regular file: said before the orchestrator waits for any proxy.
    [['orchestrator', '--configproxy-endpoint', 'http://127.0.0.1:9', '--claims-journal', join(notPem, 'claims.log')], /^nbpool orchestrator: --claims-journal \S+: a part of the path is not a directory$/],
    [['up', ...listen, '--pool-size', '1', '--claims-journal', join(notPem, 'claims.log')], /^nbpool up: --claims-journal \S+: a part of the path is not a directory$/],
    // Under /proc, where node's own recursive mkdir never returns.
    [['orchestrator', '--configproxy-endpoint', 'http://127.0.0.1:9', '--claims-journal', '/proc/nbpool-no-such/claims.log'], /^nbpool orchestrator: --claims-journal \/proc\/nbpool-no-such\/claims\.log: no such file or directory$/],
    // Without --claims-journal the journal goes in the state directory, and the line names that option.
    [['orchestrator', '--configproxy-endpoint', 'http://127.0.0.1:9', '--state-dir', notPem], /^nbpool orchestrator: --state-dir \S+not\.pem\/claims-\S+\.log: a part of the path is not a directory$/],
  ];
  // Found by a sweep of hostile configurations: each was a stack trace, a hang, or a start that
  // failed later (every answer a 500, every container start pending for ever, every request a 400).
  cases.push(
    [['proxy', '--ip', '127.0.0.1', '--port', '65535'], /^nbpool proxy: --api-port: --port 65535 leaves no next port/],
    [['proxy', ...listen, '--custom-header', 'Content-Length: 5'], /^nbpool proxy: --custom-header "Content-Length": the proxy sets this header itself$/],
    [['proxy', ...listen, '--custom-header', 'X-A: a\u0001b'], /^nbpool proxy: --custom-header "X-A": must not hold control characters/],
    [['proxy', ...listen, '--storage-backend', 'redis://127.0.0.1:9/abc'], /^nbpool proxy: store "redis:\/\/127\.0\.0\.1:9\/abc": the database is a number/],
    [['redirector', '--state-store', 'file://relative.json'], /^nbpool redirector: store "file:\/\/relative\.json": .*an absolute path/],
    [['up', ...listen, '--container-ip', ''], /^nbpool up: --container-ip: must be an IP address/],
    [['up', ...listen, '--allow-origin', 'a\u0001b'], /^nbpool up: --allow-origin: must not hold control characters/],
    [['up', ...listen, '--command', "tiny-notebook 'x"], /^nbpool up: --command: unterminated ' in command/],
    [['proxy', ...listen, '--ssl-ca', one.cert], /^nbpool proxy: --ssl-ca goes with --ssl-key and --ssl-cert/],
    [['redirector', '--state-store', ''], /^nbpool redirector: --state-store: must name a store/],
  );
  for (const [argv, message] of cases) {
    const { code, stderr } = await nbpool(...argv);
    const lines = stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{'));
    assert.equal(code, 2, `${argv.join(' ')}: ${stderr}`);
    assert.equal(lines.length, 1, `one line, no stack trace: ${stderr}`);
    assert.match(lines[0]!, message);
  }
});

test('an engine that cannot be reached at start is one line naming DOCKER_HOST, exit code 2', async () => {
  const port = await freePort();
  const result = await run(process.execPath, [bin, 'up', '--ip', '127.0.0.1', '--port', '0', '--api-ip', '127.0.0.1', '--api-port', '0', '--pool-size', '0', '--log-level', 'error'], {
    timeout: 20_000,
    env: { ...process.env, DOCKER_HOST: `tcp://127.0.0.1:${port}` },
  }).then(() => ({ code: 0, stderr: '' }), (err: { code: number; stderr: string }) => err);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, new RegExp(`^nbpool up: cannot reach the container engine at DOCKER_HOST=tcp://127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`, 'm'));
});
