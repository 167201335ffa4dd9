/** The engine client's agent: docker-modem inspects every request's options (agent included) for its debug log. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { engineClient } from '../../orchestrator/docker-backend.js';

test('the agent in every engine request prints as one word, however deep the inspection', () => {
  const { modem } = engineClient() as unknown as { modem: { agent?: object } };
  assert.ok(modem.agent, 'the client has its own agent (fresh connections to the engine)');
  assert.equal(inspect({ agent: modem.agent }, { showHidden: true, depth: null }), '{ agent: EngineAgent }');
});
