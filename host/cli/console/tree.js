// A callflow document as a tree: nodes addressed by the labels from the root (`[]` is `flow`,
// `['_', 'NO_ANSWER']` is `flow.children._.children.NO_ANSWER`, as the API's errors and the
// trace name them), drawn as nested lists, and edited in place.

import { h } from './dom.js';

/** The API's name of the node at `labels`. */
export function pathOf(labels) {
  return ['flow', ...labels.map((label) => `children.${label}`)].join('.');
}

/** The node at `labels` (`undefined` when there is none; `{}` is an empty child). */
export function nodeAt(callflow, labels) {
  let node = callflow.flow;
  for (const label of labels) node = node?.children?.[label];
  return node;
}

/** Whether `node` is a node (an empty child `{}` stops the flow). */
export function isNode(node) {
  return node !== null && typeof node === 'object' && typeof node.module === 'string';
}

/** Every node, parents before children, as `{labels, node}`. */
export function allNodes(callflow) {
  const found = [];
  const walk = (node, labels) => {
    if (!isNode(node)) return;
    found.push({ labels, node });
    for (const [label, child] of Object.entries(node.children ?? {})) walk(child, [...labels, label]);
  };
  walk(callflow.flow, []);
  return found;
}

/** Adds a `module` node under `labels` as child `label`; false when the label is taken. */
export function addChild(callflow, labels, label, module) {
  const parent = nodeAt(callflow, labels);
  parent.children ??= {};
  if (isNode(parent.children[label])) return false;
  parent.children[label] = { module, data: {}, children: {} };
  return true;
}

/** Removes the node at `labels` (never the root). */
export function removeNode(callflow, labels) {
  const parent = nodeAt(callflow, labels.slice(0, -1));
  delete parent.children[labels[labels.length - 1]];
}

/**
 * Moves the node at `from` under the node at `to` as child `label`. Refused (false) for the
 * root, under itself or below it, or onto a label that is taken.
 */
export function moveNode(callflow, from, to, label) {
  if (from.length === 0) return false;
  const below = to.length >= from.length && from.every((l, i) => to[i] === l);
  if (below) return false;
  const target = nodeAt(callflow, to);
  if (!isNode(target) || isNode(target.children?.[label])) return false;
  const node = nodeAt(callflow, from);
  removeNode(callflow, from);
  target.children ??= {};
  target.children[label] = node;
  return true;
}

/**
 * The nodes a trace says the call reached: the `<path>` of its lines that are `node <module>
 * at <path>` (or `... skipped: <why>`); a module's own log line lights nothing.
 */
export function pathsInTrace(trace) {
  const ran = new Set();
  for (const line of trace) {
    const match = /^\s*node \S+ at (flow(?:\.children\.\S+)?)(?: skipped: .*)?$/.exec(line);
    if (match) ran.add(match[1]);
  }
  return ran;
}

/** A few of a node's data fields, for its box. */
function summary(data) {
  const parts = Object.entries(data ?? {})
    .filter(([, value]) => value !== null && typeof value !== 'object')
    .slice(0, 3)
    .map(([key, value]) => `${key}: ${value}`);
  return parts.join(', ');
}

/**
 * The tree as nested lists. `view.selected` is the selected path, `view.lit` the paths a call
 * ran, `view.errors` a map of path to the API's error there; `onSelect(labels)` is called
 * when a node is chosen.
 */
export function drawTree(callflow, view, onSelect) {
  const draw = (node, labels, label) => {
    const edge = label === null ? null
      : h('span', { class: 'edge', title: label === '_' ? 'the default branch' : `the ${label} branch` }, label);
    if (!isNode(node)) {
      return h('li', { class: 'leaf' }, edge, h('span', { class: 'stop' }, 'stop'));
    }
    const path = pathOf(labels);
    const lit = view.lit.has(path);
    const error = view.errors.get(path);
    const selected = view.selected === path;
    const children = Object.entries(node.children ?? {});
    return h('li', {},
      h('div', {
        class: `node${lit ? ' lit' : ''}${error ? ' invalid' : ''}${selected ? ' selected' : ''}`,
        'data-path': path,
      },
      edge,
      h('button', {
        type: 'button',
        class: 'node-button',
        'aria-pressed': selected ? 'true' : 'false',
        'aria-label': `${node.module} at ${path}${lit ? ', ran in the last call' : ''}${error ? ', has an error' : ''}`,
        onclick: () => onSelect(labels),
        // The root's paint is the tree's, for the Element Timing API (BENCHMARKS.md).
        elementtiming: labels.length === 0 ? 'callflow-tree' : null,
      }, node.module),
      h('span', { class: 'data-summary' }, summary(node.data)),
      lit ? h('span', { class: 'badge' }, 'ran') : null,
      error ? h('p', { class: 'node-error', role: 'alert' }, error) : null),
      children.length > 0
        ? h('ul', {}, children.map(([key, child]) => draw(child, [...labels, key], key)))
        : null);
  };
  return h('ul', { class: 'tree', 'aria-label': 'Callflow tree' }, draw(callflow.flow, [], null));
}
