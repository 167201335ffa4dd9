/** Tokens: the operator's wins; else one random token kept private in .nbpool/ and found again. */
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ensureToken, readKeptToken } from '../../shared/token.js';

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
