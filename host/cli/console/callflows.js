// Callflows: the account's list, and one callflow as a tree whose nodes are edited in forms
// made from their modules' schemas, saved through the API (its 400 shown at the node), and
// tried with a simulated call whose path is lit on the tree.

import { ApiError, accountPath, get, post, put } from './api.js';
import { field, fill, h, messageRegion, say, select, table } from './dom.js';
import { schemaForm } from './schema-form.js';
import { addChild, allNodes, drawTree, isNode, moveNode, nodeAt, pathOf, pathsInTrace, removeNode } from './tree.js';

export async function render(root, session, [id]) {
  if (id) return editor(root, session.account, id);
  return list(root, session.account);
}

async function list(root, account) {
  const [callflows, modules] = await Promise.all([
    get(accountPath(account, 'callflows')),
    get(accountPath(account, 'modules')),
  ]);
  const message = messageRegion('new-callflow-message');
  const rows = callflows.map(({ id, document, error }) => [
    h('a', { href: `#/callflows/${encodeURIComponent(id)}` }, id),
    document?.name ?? '',
    (document?.numbers ?? []).join(', '),
    error ? `unreadable: ${error}` : (document?.flow?.module ?? ''),
  ]);
  const form = h('form', {
    class: 'inline-form',
    onsubmit: async (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      const number = String(data.get('number')).trim();
      const created = {
        numbers: number ? [number] : [],
        flow: { module: String(data.get('module')), data: {}, children: {} },
      };
      try {
        await put(accountPath(account, 'callflows', String(data.get('id')).trim()), created);
        location.hash = `#/callflows/${encodeURIComponent(String(data.get('id')).trim())}`;
      } catch (error) {
        say(message, error.message, 'error');
      }
    },
  },
  field('new-id', 'Id', h('input', { name: 'id', required: true, pattern: '[A-Za-z0-9_-]{1,128}' })),
  field('new-number', 'Number', h('input', { name: 'number' })),
  field('new-module', 'First node', select(modules.map((m) => m.name), modules[0]?.name, { name: 'module' })),
  h('button', { type: 'submit' }, 'Create'));
  fill(root,
    h('h1', {}, 'Callflows'),
    table('Callflows of the account', ['Callflow', 'Name', 'Numbers', 'First node'], rows),
    h('h2', {}, 'New callflow'), form, message);
}

async function editor(root, account, id) {
  const [callflow, modules] = await Promise.all([
    get(accountPath(account, 'callflows', id)),
    get(accountPath(account, 'modules')),
  ]);
  const schemas = new Map(modules.map((m) => [m.name, m.data_schema]));
  const moduleNames = modules.map((m) => m.name);
  const view = { selected: 'flow', lit: new Set(), errors: new Map() };
  let selected = [];
  let dirty = false;

  const status = messageRegion('save-message');
  const treePane = h('div', { class: 'tree-pane' });
  const nodePane = h('section', { class: 'node-pane', 'aria-labelledby': 'node-title' });
  const numbers = h('input', {
    name: 'numbers', value: (callflow.numbers ?? []).join(', '),
    oninput: (e) => {
      callflow.numbers = e.target.value.split(',').map((n) => n.trim()).filter(Boolean);
      changed();
    },
  });

  function changed() {
    dirty = true;
    say(status, 'Unsaved changes.');
  }

  function redraw() {
    performance.mark('cfhost-tree-start');
    fill(treePane, drawTree(callflow, view, (labels) => {
      selected = labels;
      view.selected = pathOf(labels);
      redraw();
      drawNode();
      nodePane.querySelector('select, input')?.focus();
    }));
    performance.mark('cfhost-tree-drawn');
    performance.measure('cfhost-tree', 'cfhost-tree-start', 'cfhost-tree-drawn');
  }

  function drawNode() {
    const node = nodeAt(callflow, selected);
    const path = pathOf(selected);
    if (!isNode(node)) {
      fill(nodePane, h('h2', { id: 'node-title' }, 'Node'), h('p', {}, 'Choose a node of the tree.'));
      return;
    }
    node.data ??= {};
    const error = view.errors.get(path);
    const nodeMessage = messageRegion('node-message');
    const others = allNodes(callflow).filter(({ labels }) => {
      const below = labels.length >= selected.length && selected.every((l, i) => labels[i] === l);
      return !below;
    });
    fill(nodePane,
      h('h2', { id: 'node-title' }, `Node ${node.module} at ${path}`),
      error ? h('p', { class: 'message error', role: 'alert' }, error) : null,
      field('node-module', 'Module', select(moduleNames.includes(node.module) ? moduleNames : [node.module, ...moduleNames], node.module, {
        onchange: (e) => {
          node.module = e.target.value;
          changed();
          redraw();
          drawNode();
        },
      })),
      schemaForm(schemas.get(node.module) ?? {}, node.data, () => {
        changed();
        redraw();
      }, 'data'),
      h('details', {},
        h('summary', {}, 'Children'),
        h('form', {
          class: 'inline-form',
          onsubmit: (event) => {
            event.preventDefault();
            const data = new FormData(event.target);
            const label = String(data.get('label')).trim() || '_';
            if (!addChild(callflow, selected, label, String(data.get('module')))) {
              say(nodeMessage, `This node already has a child ${label}.`, 'error');
              return;
            }
            changed();
            selected = [...selected, label];
            view.selected = pathOf(selected);
            redraw();
            drawNode();
          },
        },
        field('child-label', 'Child label', h('input', { name: 'label', value: '_' }), 'The outcome that leads to it: _ (default), NO_ANSWER, BUSY, ...'),
        field('child-module', 'Child module', select(moduleNames, moduleNames[0], { name: 'module' })),
        h('button', { type: 'submit' }, 'Add child')),
        selected.length > 0 ? h('form', {
          class: 'inline-form',
          onsubmit: (event) => {
            event.preventDefault();
            const data = new FormData(event.target);
            const to = JSON.parse(String(data.get('parent')));
            const label = String(data.get('label')).trim() || '_';
            if (!moveNode(callflow, selected, to, label)) {
              say(nodeMessage, `Cannot move it there as ${label}.`, 'error');
              return;
            }
            changed();
            selected = [...to, label];
            view.selected = pathOf(selected);
            redraw();
            drawNode();
          },
        },
        field('move-parent', 'Move under', select(others.map(({ labels, node: n }) => [JSON.stringify(labels), `${n.module} at ${pathOf(labels)}`]), JSON.stringify(selected.slice(0, -1)), { name: 'parent' })),
        field('move-label', 'As child', h('input', { name: 'label', value: selected[selected.length - 1] })),
        h('button', { type: 'submit' }, 'Move')) : null,
        selected.length > 0 ? h('button', {
          type: 'button',
          class: 'danger',
          onclick: () => {
            removeNode(callflow, selected);
            changed();
            selected = selected.slice(0, -1);
            view.selected = pathOf(selected);
            redraw();
            drawNode();
          },
        }, 'Remove this node') : null),
      nodeMessage);
    // The field the API named (`at data/<field>`) is marked as the one in error.
    const named = error ? /\bat data\/([^/\s:]+)/.exec(error) : null;
    const control = named ? nodePane.querySelector(`.schema-form [name="${CSS.escape(named[1])}"]`) : null;
    control?.setAttribute('aria-invalid', 'true');
  }

  async function save() {
    try {
      const answer = await put(accountPath(account, 'callflows', id), callflow);
      view.errors.clear();
      dirty = false;
      const warnings = answer.warnings ?? [];
      say(status, warnings.length ? `Saved, with warnings: ${warnings.join('; ')}` : 'Saved.');
    } catch (error) {
      view.errors.clear();
      const at = error instanceof ApiError ? error.details.path : null;
      const node = at ? allNodes(callflow)
        .map(({ labels }) => pathOf(labels))
        .filter((p) => at === p || at.startsWith(`${p}.`))
        .sort((a, b) => b.length - a.length)[0] : null;
      // At the node, what is wrong without where (the file and the path are the node's own).
      if (node) view.errors.set(node, error.message.replace(/^.*?\.json: flow\S*: /, ''));
      say(status, `Not saved: ${error.message}`, 'error');
    }
    redraw();
    drawNode();
  }

  const tryPane = tryCall(account, callflow, (lit) => {
    view.lit = lit;
    redraw();
  });

  fill(root,
    h('h1', {}, `Callflow ${id}`),
    h('p', {}, h('a', { href: '#/callflows' }, 'All callflows')),
    h('div', { class: 'toolbar' },
      field('numbers', 'Numbers', numbers, 'Comma-separated.'),
      h('button', { type: 'button', class: 'primary', onclick: save }, 'Save'),
      h('button', { type: 'button', onclick: () => { if (!dirty || confirm('Drop the unsaved changes?')) editor(root, account, id); } }, 'Reload')),
    status,
    h('div', { class: 'editor' },
      h('section', { 'aria-labelledby': 'tree-title' }, h('h2', { id: 'tree-title' }, 'Tree'), treePane),
      nodePane),
    tryPane);
  redraw();
  drawNode();
}

/** The simulator's call against the saved callflow; `onPath(paths)` lights what ran. */
function tryCall(account, callflow, onPath) {
  const results = h('div', { class: 'results', 'aria-live': 'polite' });
  const form = h('form', {
    class: 'inline-form',
    onsubmit: async (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      const body = {
        to: String(data.get('to')),
        caller_id_number: String(data.get('caller_id_number')) || undefined,
        caller_id_name: String(data.get('caller_id_name')) || undefined,
        authorizing_type: String(data.get('authorizing_type')) || undefined,
        behaviour: { bridge: String(data.get('bridge')), voicemail: String(data.get('voicemail')) },
      };
      fill(results, h('p', {}, 'Calling…'));
      try {
        const answer = await post(accountPath(account, 'calls'), body);
        onPath(pathsInTrace(answer.trace));
        fill(results,
          h('h3', {}, `Call ${answer.call_id}: ${answer.end}`),
          h('ol', { class: 'trace', 'aria-label': 'Trace' }, answer.trace.map((line) => h('li', {}, line))),
          h('h3', {}, 'Notifications'),
          answer.notifications.length === 0 ? h('p', {}, 'None.')
            : h('ul', { class: 'notifications' }, answer.notifications.map((n) => h('li', {},
              h('code', {}, n.routing_key), ` (${n.exchange})`,
              h('details', {}, h('summary', {}, 'Payload'), h('pre', { tabindex: 0 }, JSON.stringify(n.payload, null, 2)))))),
          h('h3', {}, 'Termination callbacks'),
          answer.callbacks.length === 0 ? h('p', {}, 'None.')
            : h('ul', { class: 'callbacks' }, answer.callbacks.map((c) => h('li', {}, c.module, c.error ? `: failed: ${c.error}` : ': ran'))));
      } catch (error) {
        onPath(new Set());
        fill(results, h('p', { class: 'message error', role: 'alert' }, error.message));
      }
    },
  },
  field('try-to', 'Dialed number', h('input', { name: 'to', required: true, value: callflow.numbers?.[0] ?? '' })),
  field('try-cid-number', 'Caller number', h('input', { name: 'caller_id_number', value: '+15550001234' })),
  field('try-cid-name', 'Caller name', h('input', { name: 'caller_id_name', value: 'Console Caller' })),
  field('try-authorizing', 'Placed by', select([['', 'a carrier'], ['device', 'a device'], ['resource', 'a resource']], '', { name: 'authorizing_type' })),
  field('try-bridge', 'Ringing a user', select([['no_answer', 'nobody answers'], ['answer', 'answered'], ['busy', 'busy'], ['transfer', 'answered, then transferred']], 'no_answer', { name: 'bridge' })),
  field('try-voicemail', 'At voicemail, the caller', select([['hangup', 'hangs up'], ['leave_message', 'leaves a message']], 'hangup', { name: 'voicemail' })),
  h('button', { type: 'submit' }, 'Place the call'));
  return h('section', { class: 'try', 'aria-labelledby': 'try-title' },
    h('h2', { id: 'try-title' }, 'Try a call'),
    h('p', {}, 'Runs the saved callflow on the simulator; nothing is published.'),
    form, results);
}
