/** Tokens: the operator's wins; else one random token kept private in the state directory and found again. */
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ensureToken, readKeptToken, statusPageLink, whereToFind } from '../../shared/token.js';

test('a generated token: >= 128 random bits, kept in a 0600 file, found again; a given one wins', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'nbpool-token-')), '.nbpool');
  const first = ensureToken(undefined, 'route-api-token', dir);
  assert.ok(Buffer.from(first.token, 'base64url').length >= 16, first.token);
  assert.equal(first.file, join(dir, 'route-api-token'));
  assert.equal(statSync(first.file!).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.deepEqual(ensureToken(undefined, 'route-api-token', dir), first, 'a restart finds the same token');
  assert.deepEqual(readKeptToken('route-api-token', dir), first);
  assert.notEqual(ensureToken(undefined, 'admin-token', dir).token, first.token, 'each API its own token');
  assert.deepEqual(ensureToken('mine', 'route-api-token', dir), { token: 'mine' }, 'flag, environment or config file wins');
  writeFileSync(join(dir, 'short'), 'abc\n');
  assert.notEqual(ensureToken(undefined, 'short', dir).token, 'abc', 'a kept token too short to be one is not used');
});

test('a token that cannot be kept lives for this run, and where the operator reads it says why', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'nbpool-token-')), 'file');
  writeFileSync(file, '');
  // The state directory is a file: nothing can be written below it.
  const t = ensureToken(undefined, 'route-api-token', join(file, 'state'));
  assert.equal(t.file, undefined);
  assert.match(whereToFind(t, undefined, 'CONFIGPROXY_AUTH_TOKEN'), new RegExp(`^token ${t.token} \\(for this run only: could not keep it in \\S+/file/state/route-api-token: ENOTDIR`));
  assert.match(statusPageLink('http://127.0.0.1:1', t, undefined), new RegExp(`#token=${t.token} \\(for this run only: could not keep it`));
});
