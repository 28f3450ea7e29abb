// Users and devices: listed, created and edited through the API (which validates them), with
// each device's registration state.

import { accountPath, get, put } from './api.js';
import { field, fill, h, messageRegion, say, select, table } from './dom.js';

export async function render(root, session) {
  const account = session.account;
  const message = messageRegion('directory-message');
  const users = h('div');
  const devices = h('div');
  const userForm = h('div');
  const deviceForm = h('div');

  async function refresh() {
    const [userList, deviceList, registrations] = await Promise.all([
      get(accountPath(account, 'users')),
      get(accountPath(account, 'devices')),
      get(accountPath(account, 'sip', 'registrations')),
    ]);
    const userName = (u) => [u.document?.first_name, u.document?.last_name].filter(Boolean).join(' ');
    fill(users, table('Users', ['Id', 'Name', 'Email', ''], userList.map((u) => [
      u.id, userName(u), u.document?.email ?? '',
      h('button', { type: 'button', 'aria-label': `Edit user ${u.id}`, onclick: () => drawUserForm(u) }, 'Edit'),
    ])));
    fill(devices, table('Devices', ['Id', 'Name', 'Owner', 'SIP username', 'Registration', ''], deviceList.map((d) => {
      const bound = registrations.filter((r) => r.device_id === d.id);
      const state = bound.length === 0 ? 'not registered'
        : bound.map((r) => `registered at ${r.contact} (${r.expires_in_secs} s left)`).join('; ');
      return [d.id, d.document?.name ?? '', d.document?.owner_id ?? '', d.document?.sip?.username ?? '',
        h('span', { class: bound.length ? 'registered' : 'unregistered' }, state),
        h('button', { type: 'button', 'aria-label': `Edit device ${d.id}`, onclick: () => drawDeviceForm(d, userList) }, 'Edit')];
    })));
    return userList;
  }

  async function save(kind, id, saved) {
    try {
      await put(accountPath(account, kind, id), saved);
      const userList = await refresh();
      drawUserForm(null);
      drawDeviceForm(null, userList);
      say(message, `Saved ${kind === 'users' ? 'user' : 'device'} ${id}.`);
    } catch (error) {
      say(message, `Not saved: ${error.message}`, 'error');
    }
  }

  function drawUserForm(user) {
    const d = user?.document ?? {};
    fill(userForm, h('form', {
      class: 'inline-form',
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const edited = { ...d };
        for (const key of ['first_name', 'last_name', 'email']) {
          const value = String(data.get(key)).trim();
          if (value) edited[key] = value; else delete edited[key];
        }
        save('users', String(data.get('id')).trim(), edited);
      },
    },
    h('h3', {}, user ? `Edit user ${user.id}` : 'New user'),
    field('user-id', 'Id', h('input', { name: 'id', required: true, value: user?.id ?? '', readonly: user ? true : null })),
    field('user-first', 'First name', h('input', { name: 'first_name', value: d.first_name ?? '' })),
    field('user-last', 'Last name', h('input', { name: 'last_name', value: d.last_name ?? '' })),
    field('user-email', 'Email', h('input', { name: 'email', type: 'email', value: d.email ?? '' })),
    h('button', { type: 'submit' }, user ? 'Save user' : 'Create user')));
  }

  function drawDeviceForm(device, userList) {
    const d = device?.document ?? {};
    const owners = [['', '(nobody)'], ...userList.map((u) => [u.id, u.id])];
    fill(deviceForm, h('form', {
      class: 'inline-form',
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const edited = { ...d, sip: { ...(d.sip ?? {}), username: String(data.get('username')), password: String(data.get('password')) } };
        const name = String(data.get('name')).trim();
        if (name) edited.name = name; else delete edited.name;
        const owner = String(data.get('owner_id'));
        if (owner) edited.owner_id = owner; else delete edited.owner_id;
        save('devices', String(data.get('id')).trim(), edited);
      },
    },
    h('h3', {}, device ? `Edit device ${device.id}` : 'New device'),
    field('device-id', 'Id', h('input', { name: 'id', required: true, value: device?.id ?? '', readonly: device ? true : null })),
    field('device-name', 'Name', h('input', { name: 'name', value: d.name ?? '' })),
    field('device-owner', 'Owner', select(owners, d.owner_id ?? '', { name: 'owner_id' })),
    field('device-username', 'SIP username', h('input', { name: 'username', required: true, autocomplete: 'off', value: d.sip?.username ?? '' })),
    field('device-password', 'SIP password', h('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', value: d.sip?.password ?? '' })),
    h('button', { type: 'submit' }, device ? 'Save device' : 'Create device')));
  }

  fill(root, h('h1', {}, 'Users and devices'), message,
    h('section', { 'aria-label': 'Users' }, users, userForm),
    h('section', { 'aria-label': 'Devices' }, devices, deviceForm));
  const userList = await refresh();
  drawUserForm(null);
  drawDeviceForm(null, userList);
}
