import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfig, renderHelp, checks } from '../../shared/config.js';
import { ConfigError } from '../../shared/errors.js';

const specs = {
  port: { type: 'int', default: 8000, min: 0, max: 65535, help: 'port', env: 'T_PORT' },
  ip: { type: 'string', default: '127.0.0.1', help: 'ip' },
  noXForward: { type: 'boolean', help: 'no x-forward' },
  customHeader: { type: 'list', splitCommas: false, help: 'header' },
  dirs: { type: 'list', help: 'dirs' },
  defaultTarget: { type: 'url', help: 'target' },
  logLevel: { type: 'string', default: 'info', choices: ['debug', 'info'], help: 'level' },
  ratio: { type: 'number', default: 0.5, help: 'ratio', check: (n: number) => (n <= 1 ? undefined : 'must be at most 1') },
  basePath: { type: 'string', default: '/', help: 'path', check: checks.urlPath },
} as const;

test('defaults, flags in both spellings, repeatable lists and booleans', () => {
  const { values, positionals } = parseConfig(specs, ['--port=9000', '--ip', '0.0.0.0', '--no-x-forward', '--custom-header', 'a:b', '--custom-header=c:d', 'extra'], {});
  assert.equal(values.port, 9000);
  assert.equal(values.ip, '0.0.0.0');
  assert.equal(values.noXForward, true);
  assert.deepEqual(values.customHeader, ['a:b', 'c:d']);
  assert.deepEqual(parseConfig(specs, ['--custom-header', 'Accept: a, b', '--dirs', '/a:/b,/c:/d'], {}).values, {
    ...parseConfig(specs, [], {}).values,
    customHeader: ['Accept: a, b'],
    dirs: ['/a:/b', '/c:/d'],
  });
  assert.equal(values.defaultTarget, undefined);
  assert.equal(values.ratio, 0.5);
  assert.deepEqual(positionals, ['extra']);
});

test('precedence: default < config file < environment < flag', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-config-'));
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ port: 7000, 'log-level': 'debug', pools: { a: {} } }));
  assert.equal(parseConfig(specs, ['--config', file], {}, ['pools']).values.port, 7000);
  assert.equal(parseConfig(specs, ['--config', file], {}, ['pools']).values.logLevel, 'debug');
  assert.equal(parseConfig(specs, ['--config', file], { T_PORT: '7100' }, ['pools']).values.port, 7100);
  assert.equal(parseConfig(specs, ['--config', file, '--port', '7200'], { T_PORT: '7100' }, ['pools']).values.port, 7200);
  assert.deepEqual(parseConfig(specs, ['--config', file], {}, ['pools']).file.pools, { a: {} });
});

test('every kind of bad input is one clear ConfigError', () => {
  const bad: Array<[string[], RegExp]> = [
    [['--port', 'abc'], /--port .* must be an integer, got "abc"/],
    [['--port', '70000'], /at most 65535/],
    [['--port'], /--port needs a value/],
    [['--nope'], /unknown option --nope/],
    [['--default-target', 'not a url'], /not a valid URL/],
    [['--default-target', 'ftp://x'], /must use http: or https:/],
    [['--log-level', 'loud'], /one of debug, info/],
    [['--ratio', '2'], /--ratio: must be at most 1/],
    [['--base-path', 'x'], /--base-path: must start with \//],
    [['--no-x-forward=maybe'], /true or false/],
    [['--config', '/nonexistent/file.json'], /^--config \/nonexistent\/file.json: no such file or directory$/],
    // Reading it would never end.
    [['--config', '/dev/zero'], /^--config \/dev\/zero: not a regular file$/],
    // Names every object has are not options.
    [['--to-string', 'x'], /unknown option --to-string/],
    [['--constructor', 'x'], /unknown option --constructor/],
    // A forgotten value is not the next option.
    [['--ip', '--no-x-forward'], /--ip needs a value, got the option --no-x-forward/],
  ];
  for (const [argv, message] of bad) {
    assert.throws(() => parseConfig(specs, argv, {}), (err: unknown) => err instanceof ConfigError && message.test(err.message), argv.join(' '));
  }
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-config-'));
  writeFileSync(join(dir, 'bad.json'), '{"port": ');
  assert.throws(() => parseConfig(specs, ['--config', join(dir, 'bad.json')], {}), /not valid JSON/);
  writeFileSync(join(dir, 'unknown.json'), '{"colour": "red"}');
  assert.throws(() => parseConfig(specs, ['--config', join(dir, 'unknown.json')], {}), /unknown option "colour"/);
  assert.throws(() => parseConfig(specs, [], { T_PORT: 'x' }), /from \$T_PORT/);
  writeFileSync(join(dir, 'proto.json'), '{"toString": "x"}');
  assert.throws(() => parseConfig(specs, ['--config', join(dir, 'proto.json')], {}), /unknown option "toString"/);
});

test('strings are taken trimmed, as they are checked: a choice with a space, a token with its newline', () => {
  assert.equal(parseConfig(specs, ['--log-level', ' debug'], {}).values.logLevel, 'debug');
  assert.equal(parseConfig({ token: { type: 'string', env: 'T_TOKEN', help: 'token' } } as const, [], { T_TOKEN: 'secret\n' }).values.token, 'secret');
  assert.equal(parseConfig(specs, ['--ip=--odd'], {}).values.ip, '--odd', 'a value that starts with -- is given with =');
});

test('checks for addresses and header values', () => {
  assert.match(checks.address('') ?? '', /must name an address/);
  assert.equal(checks.address('::1'), undefined);
  assert.match(checks.ip('localhost') ?? '', /IP address/);
  assert.equal(checks.ip('10.0.0.5'), undefined);
  assert.match(checks.headerValue('a\u0001b') ?? '', /control characters/);
  assert.equal(checks.headerValue("'self' https://a.example"), undefined);
  assert.match(checks.frameAncestors("'self'; script-src *") ?? '', /without ;/);
});

test('help lists every flag with its default and environment variable', () => {
  const help = renderHelp('Usage: t', 'summary', specs);
  for (const flag of ['--port', '--no-x-forward', '--custom-header', '--default-target', '--config']) assert.match(help, new RegExp(flag));
  assert.match(help, /default 8000; env T_PORT/);
});
