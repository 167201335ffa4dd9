/** The claim journal on disk: what one process wrote, a restart reads, across compactions. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileClaimJournal } from '../../orchestrator/claim-journal.js';

test('claims recorded before and after a compaction are all read back by a new process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbpool-journal-'));
  try {
    const path = join(dir, 'sub', 'claims.log');
    const journal = new FileClaimJournal(path);
    journal.record('a1');
    journal.record('b2');
    journal.record('c3');
    assert.equal(readFileSync(path, 'utf8'), 'a1\nb2\nc3\n', 'on disk at once, one line a claim');
    journal.compact(['b2']);
    journal.record('d4');
    assert.deepEqual([...new FileClaimJournal(path).load()].sort(), ['b2', 'd4'], 'the compacted file took the later claim');
    assert.deepEqual([...new FileClaimJournal(join(dir, 'none.log')).load()], [], 'no journal yet: nothing claimed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
