// Operator: every account, calls per second (from two readings of the calls finished), calls
// in progress, failures by module, the quarantines in force, the AMQP outbox and what the last
// loads rejected; read again every two seconds.

import { get } from './api.js';
import { fill, h, table } from './dom.js';

export async function render(root) {
  const figures = h('dl', { class: 'figures' });
  const details = h('div');
  let last = null;
  async function refresh() {
    const [status, accounts, rejected] = await Promise.all([get('/v1/status'), get('/v1/accounts'), get('/v1/documents/rejected')]);
    const now = performance.now();
    const rate = last ? ((status.calls.finished - last.finished) / ((now - last.at) / 1000)) : null;
    last = { finished: status.calls.finished, at: now };
    const figure = (term, value, id) => [h('dt', {}, term), h('dd', { id }, String(value))];
    fill(figures,
      figure('Accounts', status.accounts, 'figure-accounts'),
      figure('Calls per second', rate === null ? 'measuring…' : rate.toFixed(1), 'figure-cps'),
      figure('Calls in progress', status.calls.in_progress, 'figure-in-progress'),
      figure('Calls finished', status.calls.finished, 'figure-finished'),
      figure('Notifications published', status.notifications_published, 'figure-published'),
      figure('AMQP outbox', status.outbox === null ? 'no broker' : `${status.outbox} waiting`, 'figure-outbox'),
      figure('Modules rejected', status.rejected_modules, 'figure-rejected-modules'));
    fill(details,
      table('Accounts', ['Account', 'Name', 'Realm', 'Callflows', 'Users', 'Devices', 'Boxes'],
        accounts.map((a) => [a.id, a.name ?? '', a.realm ?? '', a.callflows, a.users, a.devices, a.vmboxes])),
      table('Failures by module', ['Module', 'Nodes', 'Callbacks', 'Failures', 'By kind', 'Quarantines'],
        status.modules.map((m) => [m.name, m.nodes, m.callbacks, m.failures_total,
          Object.entries(m.failures).map(([k, n]) => `${k} ${n}`).join(', ') || 'none', m.quarantines])),
      table('Quarantined now', ['Account', 'Module', 'Seconds left'],
        status.quarantined.map((q) => [q.account, q.module, q.seconds_left])),
      table('Rejected documents', ['Account', 'File', 'Error', 'Earlier version serves'],
        rejected.map((r) => [r.account, r.file ?? '', r.error ?? '', r.kept_previous ? 'yes' : 'no'])));
  }
  fill(root, h('h1', {}, 'Operator'), figures, details);
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  return () => clearInterval(timer);
}
