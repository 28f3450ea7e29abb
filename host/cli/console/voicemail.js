// Voicemail: the account's boxes (created and edited through the API), and a box's messages,
// each played in the page from the recording the API serves, and deleted.

import { accountPath, get, put, remove } from './api.js';
import { field, fill, h, messageRegion, say, select, table, when } from './dom.js';

export async function render(root, session, [openBox]) {
  const account = session.account;
  const message = messageRegion('voicemail-message');
  const boxes = h('div');
  const messages = h('section', { 'aria-labelledby': 'messages-title' });
  const urls = [];

  async function refresh() {
    const [boxList, users] = await Promise.all([get(accountPath(account, 'vmboxes')), get(accountPath(account, 'users'))]);
    fill(boxes, table('Voicemail boxes', ['Box', 'Name', 'Mailbox', 'Owner', ''], boxList.map((b) => [
      b.id, b.document?.name ?? '', b.document?.mailbox ?? '', b.document?.owner_id ?? '',
      h('button', { type: 'button', 'aria-label': `Messages of box ${b.id}`, onclick: () => { location.hash = `#/voicemail/${encodeURIComponent(b.id)}`; } }, 'Messages'),
    ])), newBox(users));
  }

  function newBox(users) {
    return h('form', {
      class: 'inline-form',
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const vmbox = { name: String(data.get('name')), mailbox: String(data.get('mailbox')) };
        if (data.get('owner_id')) vmbox.owner_id = String(data.get('owner_id'));
        try {
          await put(accountPath(account, 'vmboxes', String(data.get('id')).trim()), vmbox);
          await refresh();
          say(message, `Saved box ${data.get('id')}.`);
        } catch (error) {
          say(message, `Not saved: ${error.message}`, 'error');
        }
      },
    },
    h('h2', {}, 'New box'),
    field('box-id', 'Id', h('input', { name: 'id', required: true })),
    field('box-name', 'Name', h('input', { name: 'name', required: true })),
    field('box-mailbox', 'Mailbox number', h('input', { name: 'mailbox', required: true, inputmode: 'numeric' })),
    field('box-owner', 'Owner', select([['', '(nobody)'], ...users.map((u) => [u.id, u.id])], '', { name: 'owner_id' })),
    h('button', { type: 'submit' }, 'Create box'));
  }

  async function showMessages(boxId) {
    const list = await get(accountPath(account, 'vmboxes', boxId, 'messages'));
    const items = await Promise.all(list.messages.map(async (m) => {
      const audio = h('audio', { controls: true, preload: 'metadata', 'aria-label': `Message from ${m.caller_id_number ?? 'an unknown caller'}` });
      try {
        const blob = await get(accountPath(account, 'vmboxes', boxId, 'messages', m.message_id, 'raw'));
        const url = URL.createObjectURL(blob);
        urls.push(url);
        audio.src = url;
      } catch (error) {
        say(message, `Cannot load message ${m.message_id}: ${error.message}`, 'error');
      }
      return h('li', { class: 'voicemail', 'data-message': m.message_id },
        h('p', {}, `From ${m.caller_id_name ?? ''} ${m.caller_id_number ?? 'unknown'}, ${when(m.timestamp)}, ${((m.length_ms ?? 0) / 1000).toFixed(1)} s`),
        audio,
        h('button', {
          type: 'button', class: 'danger', 'aria-label': `Delete message ${m.message_id}`,
          onclick: async () => {
            try {
              await remove(accountPath(account, 'vmboxes', boxId, 'messages', m.message_id));
              say(message, 'Deleted.');
              await showMessages(boxId);
            } catch (error) {
              say(message, error.message, 'error');
            }
          },
        }, 'Delete'));
    }));
    fill(messages, h('h2', { id: 'messages-title' }, `Messages in box ${boxId}`),
      items.length === 0 ? h('p', {}, 'No messages.') : h('ul', { class: 'messages' }, items));
  }

  fill(root, h('h1', {}, 'Voicemail'), message, boxes, messages);
  await refresh();
  if (openBox) await showMessages(openBox);
  return () => urls.forEach((url) => URL.revokeObjectURL(url));
}
