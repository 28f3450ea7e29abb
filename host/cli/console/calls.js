// Calls: the SIP calls in progress and the last ones that ended, with their traces, read
// again every two seconds while the view is open.

import { accountPath, get } from './api.js';
import { fill, h, table, when } from './dom.js';

export async function render(root, session) {
  const all = session.role === 'operator';
  const active = all ? '/v1/sip/calls/active' : accountPath(session.account, 'sip', 'calls', 'active');
  const recent = all ? '/v1/sip/calls' : accountPath(session.account, 'sip', 'calls');
  const live = h('div', { 'aria-live': 'polite' });
  const ended = h('div');
  async function refresh() {
    const [inProgress, last] = await Promise.all([get(active), get(recent)]);
    fill(live, table('Calls in progress', ['Call-ID', 'Account', 'From', 'To', 'Placed by', 'Since'],
      inProgress.map((c) => [c.call_id, c.account_id, c.from, c.to, c.caller, when(c.started_at)])));
    fill(ended,
      h('h2', {}, 'Recent calls'),
      last.length === 0 ? h('p', {}, 'No SIP call has ended yet.')
        : h('ul', { class: 'recent' }, last.slice().reverse().map((c) => h('li', {},
          h('details', {},
            h('summary', {}, `${c.call_id} (${c.account_id}): ${c.result}`),
            h('ol', { class: 'trace' }, c.trace.map((line) => h('li', {}, line))))))));
  }
  fill(root,
    h('h1', {}, 'Calls'),
    h('p', {}, all ? 'Every account’s SIP calls on this node.' : 'This account’s SIP calls on this node.'),
    live, ended);
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  return () => clearInterval(timer);
}
