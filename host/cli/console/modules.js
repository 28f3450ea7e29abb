// Modules: what the account's callflows can use (the system's and its own), with their
// capabilities, schemas, whether they can run and whether they are quarantined; an upload
// checked as `cfhost module check` checks it, and removal of the account's own.

import { accountPath, get, put, remove } from './api.js';
import { field, fill, h, messageRegion, say, table } from './dom.js';

export async function render(root, session) {
  const account = session.account;
  const verdict = messageRegion('upload-verdict');
  const listing = h('div');

  async function refresh() {
    const modules = await get(accountPath(account, 'modules'));
    const failures = new Map();
    if (session.role === 'operator') {
      const status = await get('/v1/status');
      for (const m of status.modules) failures.set(m.name, m.failures_total);
    }
    const rows = modules.map((m) => {
      const own = m.owner !== 'system';
      return [
        h('span', {}, m.name, h('small', { class: 'version' }, ` ${m.version ?? ''}`)),
        own ? 'this account' : 'system',
        m.summary ?? '',
        (m.capabilities ?? []).join(', ') || 'none',
        m.usable ? 'yes' : `no: ${m.missing_capability} not granted`,
        m.quarantined ? 'quarantined' : (session.role === 'operator' ? `${failures.get(m.name) ?? 0} failures` : 'healthy'),
        h('details', {}, h('summary', {}, 'Schema'), h('pre', { tabindex: 0 }, JSON.stringify(m.data_schema, null, 2))),
        own ? h('button', {
          type: 'button', class: 'danger', 'aria-label': `Remove ${m.name}`,
          onclick: async () => {
            try {
              await remove(accountPath(account, 'modules', m.name));
              await refresh();
              say(verdict, `Removed ${m.name}.`);
            } catch (error) {
              say(verdict, error.message, 'error');
            }
          },
        }, 'Remove') : '',
      ];
    });
    fill(listing, table('Modules the account can use',
      ['Module', 'From', 'What it does', 'Capabilities', 'Can run', 'Health', 'Data schema', ''], rows));
  }

  const file = h('input', { type: 'file', name: 'file', accept: '.wasm,application/wasm', required: true });
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9_-]{1,128}' });
  file.addEventListener('change', () => {
    if (!name.value && file.files[0]) name.value = file.files[0].name.replace(/\.wasm$/, '');
  });
  const upload = h('form', {
    class: 'inline-form',
    onsubmit: async (event) => {
      event.preventDefault();
      say(verdict, 'Checking…');
      try {
        const bytes = await file.files[0].arrayBuffer();
        const answer = await put(accountPath(account, 'modules', name.value), bytes, 'application/wasm');
        const problems = [...(answer.callflow_errors ?? []).map((e) => e.error ?? JSON.stringify(e)), ...(answer.warnings ?? [])];
        await refresh();
        say(verdict, `Accepted ${answer.name} ${answer.version}.${problems.length ? ` ${problems.join('; ')}` : ''}`);
      } catch (error) {
        say(verdict, `Refused: ${error.message}`, 'error');
      }
    },
  },
  field('module-file', 'Component (.wasm)', file),
  field('module-name', 'Name', name, 'The name the module describes itself with.'),
  h('button', { type: 'submit' }, 'Upload'));

  fill(root, h('h1', {}, 'Modules'), listing, h('h2', {}, 'Upload a module'), upload, verdict);
  await refresh();
}
