import assert from 'node:assert/strict';
import { test } from 'node:test';
import { choose, freeCapacity, newLoad, recordPoll, remaining, type NodeLoad } from '../../redirector/choose.js';

function loads(rooms: number[]): NodeLoad[] {
  return rooms.map((room, i) => {
    const load = newLoad(`n${i}`);
    load.eligible = true;
    recordPoll(load, room, 0);
    return load;
  });
}

function counts(all: NodeLoad[], n: number): number[] {
  const got = all.map(() => 0);
  for (let k = 0; k < n; k++) {
    const chosen = choose(all);
    assert.ok(chosen, `choice ${k} found a node`);
    got[all.indexOf(chosen)]!++;
  }
  return got;
}

test('a burst equal to the total room (100/200/700) lands within 2% of the capacity shares, at every step', () => {
  const all = loads([100, 200, 700]);
  const shares = [0.1, 0.2, 0.7];
  const got = [0, 0, 0];
  let worst = 0;
  for (let k = 1; k <= 1000; k++) {
    const chosen = choose(all)!;
    got[all.indexOf(chosen)]!++;
    for (let i = 0; i < 3; i++) worst = Math.max(worst, Math.abs(got[i]! - k * shares[i]!) / 1000);
  }
  assert.deepEqual(got, [100, 200, 700]);
  assert.ok(worst <= 0.02, `largest deviation ${worst}`);
  assert.equal(choose(all), undefined, 'all full after the burst: none');
});

test('its own sends count against a node until a poll that left after them', () => {
  const [a] = loads([3]);
  counts([a!], 2);
  assert.equal(remaining(a!), 1);
  // A poll that left before the second send still shows only the first one.
  recordPoll(a!, 2, 1);
  assert.equal(remaining(a!), 1);
  recordPoll(a!, 1, 2);
  assert.equal(remaining(a!), 1);
  counts([a!], 1);
  assert.equal(choose([a!]), undefined);
});

test('down and draining (not eligible) and full nodes are never chosen', () => {
  const all = loads([50, 50, 0]);
  all[0]!.eligible = false;
  assert.deepEqual(counts(all, 50), [0, 50, 0]);
  assert.equal(choose(all), undefined);
  all[0]!.eligible = true;
  assert.equal(choose(all), all[0]);
});

test('low steady traffic still follows the weights across polls', () => {
  const all = loads([100, 300]);
  const got = [0, 0];
  for (let k = 0; k < 400; k++) {
    const chosen = choose(all)!;
    got[all.indexOf(chosen)]!++;
    // A poll after every visitor that shows the send and the same room again (a refilling node).
    for (const load of all) recordPoll(load, load === all[0] ? 100 : 300, load.sent);
  }
  assert.deepEqual(got, [100, 300]);
});

test("free capacity is our room, else tmpnb's available, never negative", () => {
  assert.equal(freeCapacity({ available: 3, room: 10 }), 10);
  assert.equal(freeCapacity({ available: 3 }), 3);
  assert.equal(freeCapacity({ available: 3, room: -2 }), 0);
  assert.equal(freeCapacity({ available: Number.NaN }), 0);
  // A tmpnb-only node weighs by available.
  const all = loads([freeCapacity({ available: 10 }), freeCapacity({ available: 30 })]);
  assert.deepEqual(counts(all, 40), [10, 30]);
});

test('no nodes at all: none', () => {
  assert.equal(choose([]), undefined);
});
