/** makeDirectories: `mkdir -p` that says why, where node's recursive mkdir would never return. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeDirectories } from '../../shared/files.js';

test('makes missing parents with the mode asked for, and takes a directory that is there', () => {
  const root = mkdtempSync(join(tmpdir(), 'nbpool-dirs-'));
  try {
    const deep = join(root, 'a', 'b', 'c');
    makeDirectories(deep, 0o700);
    assert.ok(statSync(deep).isDirectory());
    assert.equal(statSync(join(root, 'a')).mode & 0o777, 0o700 & ~process.umask());
    makeDirectories(deep);
    makeDirectories(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a file in the way is EEXIST from mkdir, at the end of the path or inside it', () => {
  const root = mkdtempSync(join(tmpdir(), 'nbpool-dirs-'));
  try {
    const file = join(root, 'file');
    writeFileSync(file, '');
    for (const path of [file, join(file, 'below')]) {
      assert.throws(() => makeDirectories(path), (err: NodeJS.ErrnoException) => err.code === (path === file ? 'EEXIST' : 'ENOTDIR') && err.syscall === 'mkdir');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('where the kernel refuses with ENOENT under an existing parent (/proc), it throws at once', () => {
  // In a child with a time limit: node's own recursive mkdir loops forever here, and a loop on this
  // thread would hang the test run instead of failing it.
  const module = new URL('../../shared/files.ts', import.meta.url).href;
  const script = `import { makeDirectories } from ${JSON.stringify(module)};
for (const path of ['/proc/nbpool-no-such/dir', '/proc/nbpool-no-such']) {
  try { makeDirectories(path); console.log('made'); } catch (err) { console.log(err.code); }
}`;
  const child = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15_000 });
  assert.equal(child.signal, null, 'it returned');
  assert.deepEqual(child.stdout.trim().split('\n'), ['ENOENT', 'ENOENT'], child.stderr);
});
