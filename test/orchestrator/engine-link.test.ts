import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EngineLink, isConnectionError } from '../../orchestrator/engine-link.js';

function link() {
  const said: string[] = [];
  const engine = new EngineLink({ lost: (err) => said.push(`lost: ${err.message}`), restored: () => said.push('restored') });
  return { engine, said };
}

test('the engine going and coming back is said once each way, however many signals say it', () => {
  const { engine, said } = link();
  assert.equal(engine.trusted, true);
  engine.fail('calls', new Error('connect ECONNREFUSED'));
  engine.fail('calls', new Error('again'));
  engine.fail('events', new Error('stream closed'));
  assert.equal(engine.trusted, false);
  engine.recover('calls');
  assert.equal(engine.trusted, false, 'still down while the event stream is');
  engine.recover('calls');
  engine.recover('events');
  assert.equal(engine.trusted, true);
  assert.deepEqual(said, ['lost: connect ECONNREFUSED', 'restored']);
  engine.recover('events');
  assert.deepEqual(said, ['lost: connect ECONNREFUSED', 'restored'], 'a signal that was not down changes nothing');
});

test('connection errors are told from the engine refusing a request', () => {
  const errno = (code: string) => Object.assign(new Error(`connect ${code}`), { code });
  assert.ok(isConnectionError(errno('ECONNREFUSED')));
  assert.ok(isConnectionError(errno('ENOENT')), 'no socket file: no engine');
  assert.ok(isConnectionError(new Error('socket hang up')));
  assert.ok(!isConnectionError(Object.assign(new Error('(HTTP code 404) no such image'), { statusCode: 404, code: 'ENOENT' })), 'an HTTP answer is the engine speaking');
  assert.ok(!isConnectionError(new Error('(HTTP code 500) server error')));
  assert.ok(!isConnectionError(undefined));
  assert.ok(!isConnectionError('ECONNREFUSED'));
});
