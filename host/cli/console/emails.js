// Emails: the account's templates, edited (subject, text and HTML) with a preview rendered
// beside from the unsaved text, as the mailer would send it; the HTML in a sandboxed frame.

import { accountPath, get, post, put, remove } from './api.js';
import { field, fill, h, messageRegion, say } from './dom.js';

export async function render(root, session, [openId]) {
  const account = session.account;
  const templates = await get(accountPath(account, 'notifications'));
  const editorPane = h('section', { class: 'email-editor', 'aria-labelledby': 'template-title' });
  const list = h('ul', { class: 'templates' }, templates.map((t) => h('li', {},
    h('a', { href: `#/emails/${encodeURIComponent(t.id)}` }, t.id),
    ` ${t.subject ?? ''}${t.default ? ' (teletype’s default)' : ''}`)));
  const newTemplate = h('form', {
    class: 'inline-form',
    onsubmit: (event) => {
      event.preventDefault();
      location.hash = `#/emails/${encodeURIComponent(new FormData(event.target).get('id'))}`;
    },
  }, field('template-new-id', 'New template id', h('input', { name: 'id', required: true, pattern: '[A-Za-z0-9_-]{1,128}' })), h('button', { type: 'submit' }, 'Open'));
  fill(root, h('h1', {}, 'Emails'), list, newTemplate, editorPane);
  const id = openId ?? templates[0]?.id;
  if (id) await edit(editorPane, account, id);
}

async function edit(pane, account, id) {
  let template;
  try {
    template = await get(accountPath(account, 'notifications', id));
  } catch (error) {
    if (error.status !== 404) throw error;
    template = { id, subject: '', text: '', html: '', to: { type: 'admins' } };
  }
  const message = messageRegion('template-message');
  const subject = h('input', { name: 'subject', value: template.subject ?? '' });
  const text = h('textarea', { name: 'text', rows: 12, class: 'code', value: template.text ?? '' });
  const html = h('textarea', { name: 'html', rows: 12, class: 'code', value: template.html ?? '' });
  const preview = h('div', { class: 'preview', 'aria-live': 'polite' });
  const draft = () => {
    const { default: _, id: __, ...fields } = template;
    return { ...fields, subject: subject.value, text: text.value || null, html: html.value || null };
  };
  async function renderPreview() {
    try {
      const email = await post(accountPath(account, 'notifications', id, 'preview'), { template: draft() });
      fill(preview,
        h('h3', {}, 'Preview'),
        h('p', {}, h('strong', {}, 'Subject: '), h('span', { class: 'preview-subject' }, email.subject ?? '')),
        h('p', {}, h('strong', {}, 'From: '), email.from ?? ''),
        h('p', {}, h('strong', {}, 'To: '), (email.to ?? []).join(', ') || '(nobody, for the sample call)'),
        h('pre', { tabindex: 0, class: 'preview-text' }, email.text ?? ''),
        h('iframe', { class: 'preview-html', title: 'The HTML part, as rendered', sandbox: '', srcdoc: email.html ?? '' }));
    } catch (error) {
      fill(preview, h('h3', {}, 'Preview'), h('p', { class: 'message error', role: 'alert' }, error.message));
    }
  }
  fill(pane,
    h('h2', { id: 'template-title' }, `Template ${id}${template.default ? ' (teletype’s default, not stored)' : ''}`),
    h('div', { class: 'email-columns' },
      h('form', {
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            await put(accountPath(account, 'notifications', id), draft());
            say(message, 'Saved.');
          } catch (error) {
            say(message, `Not saved: ${error.message}`, 'error');
          }
        },
      },
      field('template-subject', 'Subject', subject),
      field('template-text', 'Text body', text),
      field('template-html', 'HTML body', html),
      h('div', { class: 'toolbar' },
        h('button', { type: 'button', onclick: renderPreview }, 'Preview'),
        h('button', { type: 'submit', class: 'primary' }, 'Save'),
        template.default ? null : h('button', {
          type: 'button', class: 'danger',
          onclick: async () => {
            try {
              await remove(accountPath(account, 'notifications', id));
              say(message, 'Removed: teletype’s default applies again where there is one.');
            } catch (error) {
              say(message, error.message, 'error');
            }
          },
        }, 'Remove')),
      message),
      preview));
  await renderPreview();
}
