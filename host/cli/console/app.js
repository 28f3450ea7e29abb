// The console's shell: sign-in, the account in view, the navigation, and which view is shown
// (the address's hash: #/callflows, #/callflows/<id>, #/calls, ...).

import { ApiError, get, hasToken, setToken } from './api.js';
import { fill, h, select } from './dom.js';
import * as callflows from './callflows.js';
import * as calls from './calls.js';
import * as modules from './modules.js';
import * as directory from './directory.js';
import * as voicemail from './voicemail.js';
import * as emails from './emails.js';
import * as operator from './operator.js';

const VIEWS = [
  ['callflows', 'Callflows', callflows],
  ['calls', 'Calls', calls],
  ['modules', 'Modules', modules],
  ['users', 'Users and devices', directory],
  ['voicemail', 'Voicemail', voicemail],
  ['emails', 'Emails', emails],
  ['operator', 'Operator', operator],
];

/** Who is signed in and which account is in view. */
const session = { role: null, account: null, accounts: [] };
let stopView = null;

const $ = (id) => document.getElementById(id);

async function signIn(token) {
  setToken(token);
  try {
    const who = await get('/v1/session');
    session.role = who.role;
    session.accounts = await get('/v1/accounts');
    session.account = who.account_id
      ?? sessionStorage.getItem('cfhost-account')
      ?? session.accounts[0]?.id ?? null;
    if (!session.accounts.some((a) => a.id === session.account)) session.account = session.accounts[0]?.id ?? null;
    return true;
  } catch (error) {
    setToken('');
    $('signin-error').textContent = error instanceof ApiError && error.status === 401
      ? 'That token opens nothing here.'
      : `Cannot sign in: ${error.message}`;
    return false;
  }
}

function signOut() {
  setToken('');
  sessionStorage.removeItem('cfhost-account');
  location.hash = '';
  location.reload();
}

function drawShell() {
  $('signin').hidden = true;
  $('view').hidden = false;
  const nav = $('nav');
  nav.hidden = false;
  const views = VIEWS.filter(([id]) => id !== 'operator' || session.role === 'operator');
  fill(nav, h('ul', {}, views.map(([id, label]) => h('li', {}, h('a', { href: `#/${id}`, 'data-view': id }, label)))));
  const who = $('who');
  const role = session.role === 'operator' ? 'Operator' : `Account ${session.account}`;
  const picker = session.role === 'operator' && session.accounts.length > 0
    ? h('div', { class: 'field inline' },
      h('label', { for: 'account' }, 'Account'),
      select(session.accounts.map((a) => [a.id, a.name ? `${a.name} (${a.id})` : a.id]), session.account, {
        id: 'account',
        onchange: (event) => {
          session.account = event.target.value;
          sessionStorage.setItem('cfhost-account', session.account);
          route();
        },
      }))
    : null;
  fill(who, h('span', {}, role), picker, h('button', { type: 'button', onclick: signOut }, 'Sign out'));
}

async function route() {
  if (stopView) stopView();
  stopView = null;
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const entry = VIEWS.find(([id]) => id === name) ?? VIEWS[0];
  if (entry[0] === 'operator' && session.role !== 'operator') {
    location.hash = '#/callflows';
    return;
  }
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.view === entry[0]) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const root = $('view');
  fill(root);
  document.title = `${entry[1]} · cfhost console`;
  if (!session.account && entry[0] !== 'operator') {
    fill(root, h('h1', {}, entry[1]), h('p', {}, 'There is no account to show.'));
    return;
  }
  try {
    stopView = await entry[2].render(root, { ...session }, rest) ?? null;
  } catch (error) {
    fill(root, h('h1', {}, entry[1]), h('p', { class: 'message error', role: 'alert' }, error.message));
  }
}

async function start() {
  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (await signIn($('token').value.trim())) {
      drawShell();
      await route();
    }
  });
  window.addEventListener('hashchange', route);
  if (hasToken() && await signIn(sessionStorage.getItem('cfhost-token'))) {
    drawShell();
    await route();
  } else {
    $('token').focus();
  }
}

start();
