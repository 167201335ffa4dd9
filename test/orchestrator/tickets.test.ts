// The loading-page tickets (orchestrator/tickets.ts) against a line that is played by hand: served,
// given up by the line, abandoned by the page, collected and forgotten.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Claim, PlaceInLine } from '../../orchestrator/orchestrator.js';
import { TicketDesk, type WaitingLine } from '../../orchestrator/tickets.js';

class HandLine implements WaitingLine {
  readonly places: Array<{ place: PlaceInLine; serve(claim: Claim): void; giveUp(): void; left: boolean }> = [];
  joinLine(pool: string | undefined): PlaceInLine {
    let serve!: (claim: Claim) => void;
    let giveUp!: (err: Error) => void;
    const claimed = new Promise<Claim>((resolve, reject) => ((serve = resolve), (giveUp = reject)));
    const entry = {
      place: {
        id: `t${this.places.length}`,
        pool: pool ?? 'default',
        claimed,
        position: () => this.places.filter((p) => !p.left).indexOf(entry) + 1,
        waiting: () => this.places.filter((p) => !p.left).length,
        leave: () => void (entry.left = true),
      },
      serve: (claim: Claim) => serve(claim),
      giveUp: () => giveUp(new Error('expired')),
      left: false,
    };
    this.places.push(entry);
    return entry.place;
  }
}

const claim = (id: string): Claim => ({ id, pool: 'default', url: `/user/${id}/tree`, target: 'http://127.0.0.1:1', latencyMs: 1 });
const tick = () => new Promise((r) => setImmediate(r));

test('a waiting ticket shows its place, a long poll answers when it is served, and the claim is collected', async () => {
  const line = new HandLine();
  const desk = new TicketDesk(line);
  try {
    const first = desk.open(undefined, { path: '', query: '' });
    const second = desk.open(undefined, { path: '', query: '' });
    assert.deepEqual(desk.view(second), { state: 'waiting', position: 2, waiting: 2 });
    const poll = desk.wait(first, 10_000);
    line.places[0]!.serve(claim('abc'));
    assert.deepEqual(await poll, { state: 'ready', url: '/user/abc/tree', visitorId: 'abc' });
    line.places[1]!.giveUp();
    await tick();
    assert.deepEqual(desk.view(second), { state: 'gone' });
    assert.deepEqual(desk.view('unknown'), { state: 'gone' });
  } finally {
    desk.close();
  }
});

test('a page that stops polling leaves the line; one with a poll open stays; collected tickets are forgotten', async () => {
  const line = new HandLine();
  const desk = new TicketDesk(line, { abandonMs: 1000, keepMs: 5000, sweepMs: 3_600_000 });
  try {
    const gone = desk.open(undefined, { path: '', query: '' });
    const polling = desk.open(undefined, { path: '', query: '' });
    const served = desk.open(undefined, { path: '', query: '' });
    const poll = desk.wait(polling, 60_000);
    line.places[2]!.serve(claim('s'));
    await tick();
    desk.sweep(Date.now() + 2000);
    assert.equal(line.places[0]!.left, true, 'the page that stopped polling left the line');
    assert.equal(line.places[1]!.left, false, 'a page with a poll open is not abandoned');
    assert.deepEqual(desk.view(gone), { state: 'gone' });
    assert.equal(desk.view(served).state, 'ready', 'a served ticket is kept for its visitor to collect');
    desk.sweep(Date.now() + 6000);
    assert.deepEqual(desk.view(served), { state: 'gone' }, 'and forgotten after keepMs');
    desk.close();
    assert.deepEqual(await poll, { state: 'gone' }, 'closing answers open polls at once');
  } finally {
    desk.close();
  }
});
