// The console's tree edits, in Node without a browser (tree.js builds DOM only when drawing).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addChild, allNodes, moveNode, pathOf, pathsInTrace, removeNode } from '../../host/cli/console/tree.js';

const callflow = () => ({
  numbers: ['100'],
  flow: {
    module: 'a', data: {}, children: {
      _: { module: 'b', data: {}, children: { NO_ANSWER: { module: 'c', data: {}, children: {} } } },
      BUSY: {},
    },
  },
});

test('paths are named as the API and the trace name them', () => {
  assert.equal(pathOf([]), 'flow');
  assert.equal(pathOf(['_', 'NO_ANSWER']), 'flow.children._.children.NO_ANSWER');
  assert.deepEqual(allNodes(callflow()).map(({ labels }) => pathOf(labels)),
    ['flow', 'flow.children._', 'flow.children._.children.NO_ANSWER']);
});

test('a child is added only under a free label; an empty child {} is free', () => {
  const c = callflow();
  assert.equal(addChild(c, ['_'], 'NO_ANSWER', 'x'), false);
  assert.equal(addChild(c, [], 'BUSY', 'x'), true);
  assert.equal(c.flow.children.BUSY.module, 'x');
});

test('a node moves anywhere but under itself, and never the root', () => {
  const c = callflow();
  assert.equal(moveNode(c, [], ['_'], 'x'), false, 'the root');
  assert.equal(moveNode(c, ['_'], ['_'], 'x'), false, 'under itself');
  assert.equal(moveNode(c, ['_'], ['_', 'NO_ANSWER'], 'x'), false, 'below itself');
  assert.equal(moveNode(c, ['_', 'NO_ANSWER'], [], '_'), false, 'onto a taken label');
  assert.deepEqual(c, callflow(), 'a refused move changes nothing');
  assert.equal(moveNode(c, ['_', 'NO_ANSWER'], [], 'TIMEOUT'), true);
  assert.equal(c.flow.children.TIMEOUT.module, 'c');
  assert.deepEqual(c.flow.children._.children, {});
  removeNode(c, ['TIMEOUT']);
  assert.equal(c.flow.children.TIMEOUT, undefined);
});

test('the nodes a trace ran are its `node ... at <path>` lines, not what a module logs', () => {
  const trace = [
    'switch: INVITE c1 from 1 (trunk t) to 2',
    'node a at flow',
    '  a [info] node x at flow.children.FAKE is only a log line of module a',
    '=> continue',
    '   node b at flow.children._',
    'node c at flow.children._.children.NO_ANSWER skipped: skip_module',
  ];
  assert.deepEqual([...pathsInTrace(trace)],
    ['flow', 'flow.children._', 'flow.children._.children.NO_ANSWER']);
});
