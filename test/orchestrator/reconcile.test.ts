/** The pure reconcile step: engine, pool core and proxy routes compared, actions returned. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LABELS, type FoundContainer } from '../../orchestrator/backend.js';
import { reconcile, type KnownContainer } from '../../orchestrator/reconcile.js';

const instance = 'i1';
const found = (id: string, running = true, extra: Partial<FoundContainer> = {}): FoundContainer => ({
  containerId: `c-${id}`,
  name: `i1-default-${id}`,
  labels: { [LABELS.instance]: instance, [LABELS.user]: id, [LABELS.pool]: 'default' },
  running,
  target: `http://127.0.0.1:${id.length}`,
  claimed: false,
  ...extra,
});
const known = (id: string, state: KnownContainer['state'], startedAt = 1000): KnownContainer => ({
  id,
  pool: 'default',
  state,
  containerId: `c-${id}`,
  target: `http://127.0.0.1:${id.length}`,
  startedAt,
  ...(state === 'claimed' ? { routedAt: startedAt } : {}),
});
const route = (id: string, extra: Record<string, unknown> = {}) => ({ target: `http://127.0.0.1:${id.length}`, instance, ...extra });

test('in line: nothing to do, last activity read from the routes', () => {
  const { actions, lastActivity } = reconcile({
    instance,
    known: [known('w', 'warm'), known('cc', 'claimed')],
    engine: [found('w'), found('cc')],
    listedAt: 2000,
    routes: { '/user/cc': route('cc', { last_activity: '2026-01-01T00:00:00.000Z' }), '/other': { target: 'http://x' } },
  });
  assert.deepEqual(actions, []);
  assert.equal(lastActivity.get('cc'), Date.parse('2026-01-01T00:00:00.000Z'));
});

test('dead and vanished containers are replaced; starting and removing ones are left to their own paths', () => {
  const { actions } = reconcile({
    instance,
    known: [known('w', 'warm'), known('cc', 'claimed'), known('sss', 'starting'), known('rrrr', 'removing')],
    engine: [found('w', false), found('sss', false), found('rrrr', false)],
    listedAt: 2000,
  });
  assert.deepEqual(actions, [
    { kind: 'replace-dead', id: 'w', reason: 'exited' },
    { kind: 'replace-dead', id: 'cc', reason: 'vanished' },
  ]);
});

test('a container whose start answered after the list began is not judged missing', () => {
  const { actions } = reconcile({ instance, known: [known('w', 'warm', 2500), { ...known('x', 'warm'), startedAt: undefined }], engine: [], listedAt: 2000 });
  assert.deepEqual(actions, []);
});

test('unknown containers are removed; foreign routes are left alone', () => {
  const { actions } = reconcile({
    instance,
    known: [],
    engine: [found('zz'), { ...found('q'), labels: { [LABELS.instance]: instance } }],
    listedAt: 2000,
    routes: { '/user/other': { target: 'http://x', instance: 'someone-else' }, '/user/zz/deeper': route('zz') },
  });
  assert.deepEqual(actions, [
    { kind: 'remove-unknown', containerId: 'c-zz' },
    { kind: 'remove-unknown', containerId: 'c-q' },
  ]);
});

test('routes: stale ones deleted, lost or misdirected ones re-added, none for a dead container', () => {
  const { actions } = reconcile({
    instance,
    known: [known('a', 'claimed'), known('bb', 'claimed'), known('ccc', 'warm'), known('dddd', 'claimed'), known('eeeee', 'removing')],
    engine: [found('a'), found('bb'), found('ccc')],
    listedAt: 2000,
    routes: {
      '/user/bb': route('bb', { target: 'http://127.0.0.1:9' }),
      '/user/ccc': route('ccc'),
      '/user/gone': route('gone'),
      '/user/eeeee': route('eeeee'),
    },
  });
  assert.deepEqual(actions, [
    { kind: 'replace-dead', id: 'dddd', reason: 'vanished' },
    { kind: 'delete-route', path: '/user/ccc' },
    { kind: 'delete-route', path: '/user/gone' },
    { kind: 'add-route', id: 'a' },
    { kind: 'add-route', id: 'bb' },
  ]);
});

test('a claim whose route write was in flight, or landed after the proxy was listed, is not judged yet', () => {
  const { actions } = reconcile({
    instance,
    known: [{ ...known('in-flight', 'claimed'), routedAt: undefined }, { ...known('late', 'claimed'), routedAt: 2001 }, known('lost', 'claimed')],
    engine: [found('in-flight'), found('late'), found('lost')],
    listedAt: 2000,
    routes: {},
  });
  assert.deepEqual(actions, [{ kind: 'add-route', id: 'lost' }]);
});

test("a warm container on a leaving machine is replaced; a visitor's stays", () => {
  const { actions } = reconcile({
    instance,
    known: [known('w', 'warm'), known('cc', 'claimed')],
    engine: [found('w', true, { leaving: true }), found('cc', true, { leaving: true })],
    listedAt: 2000,
  });
  assert.deepEqual(actions, [{ kind: 'replace-leaving', id: 'w' }]);
});
