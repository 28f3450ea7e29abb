// check_cid's branches, run natively against a scripted call: `npm test`.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ScriptedCall, ModuleError, checkDescription } from '../sdk/testing.js';
import * as checkCid from './check_cid.js';

const to = (...keys) => ({ tag: 'continue-to', val: keys });
const from = (number) => new ScriptedCall({ callerIdName: 'Jane', callerIdNumber: number });

test('describes itself with KAZOO schema and asks for call control and logging', () => {
  const description = checkDescription(checkCid);
  assert.equal(description.name, 'check_cid');
  assert.deepEqual(description.capabilities, ['call-control', 'log']);
  const schema = JSON.parse(description.dataSchema);
  assert.equal(schema._id, 'callflows.check_cid');
  assert.equal(schema.properties.regex.default, '.*');
  assert.equal(schema.properties.use_absolute_mode.default, false);
});

test('a caller id matching the regex goes to match, and takes the caller id the node sets', () => {
  const call = from('+15550001234').children(['match', 'nomatch', '_']);
  const data = { regex: '^\\+1555', caller_id: { external: { name: 'VIP', number: '+15559990000' } } };
  assert.deepEqual(call.handle(checkCid, data), to('match'));
  assert.deepEqual(call.callerId, { name: 'VIP', number: '+15559990000' });
});

test('a caller id that does not match goes to nomatch and keeps its caller id', () => {
  const call = from('+4930123456').children(['match', 'nomatch']);
  const data = { regex: '^\\+1555', caller_id: { external: { name: 'VIP' } } };
  assert.deepEqual(call.handle(checkCid, data), to('nomatch'));
  assert.deepEqual(call.callerId, { name: 'Jane', number: '+4930123456' });
});

test('the default regex matches every caller, even one without a number', () => {
  const call = new ScriptedCall({ callerIdNumber: undefined }).children(['match']);
  assert.deepEqual(call.handle(checkCid, {}), to('match'));
});

test('a match without a match child continues to _ and sets nothing, as KAZOO does', () => {
  const call = from('+15550001234').children(['nomatch', '_']);
  const data = { caller_id: { external: { name: 'VIP' } } };
  assert.deepEqual(call.handle(checkCid, data), to());
  assert.equal(call.callerId.name, 'Jane');
});

test('absolute mode goes to the child keyed by the caller id number', () => {
  const call = from('+15550001234').children(['+15550001234', '+15550009999', 'nomatch']);
  const data = { use_absolute_mode: true, caller_id: { external: { number: '1000' } } };
  assert.deepEqual(call.handle(checkCid, data), to('+15550001234'));
  assert.deepEqual(call.callerId, { name: 'Jane', number: '1000' });
});

test('absolute mode goes to nomatch when no child is keyed by the number', () => {
  const call = from('+15550004321').children(['+15550001234', 'nomatch']);
  assert.deepEqual(call.handle(checkCid, { use_absolute_mode: true }), to('nomatch'));
});

test('absolute mode still needs the regex to match first', () => {
  const call = from('+15550001234').children(['+15550001234', 'nomatch']);
  assert.deepEqual(call.handle(checkCid, { use_absolute_mode: true, regex: '^\\+44' }), to('nomatch'));
});

test('a regex that does not compile is the node error, naming it', () => {
  assert.throws(() => from('+1').children(['match']).handle(checkCid, { regex: '([' }), (e) => {
    assert.ok(e instanceof ModuleError);
    assert.match(e.message, /regex "\(\[" does not compile/);
    return true;
  });
});

test('a caller id the host refuses is the node error, and the caller id stays', () => {
  const call = from('+15550001234').children(['match']);
  const data = { caller_id: { external: { number: '1'.repeat(129) } } };
  assert.throws(() => call.handle(checkCid, data), /caller_id.external was not set/);
  assert.equal(call.callerId.number, '+15550001234');
});
