// The console's shell: sign-in, the account in view, the navigation, and which view is shown
// (the address's hash: #/callflows, #/callflows/<id>, #/calls, ...).

import { ApiError, get, hasToken, setToken } from './api.js';
import { fill, h, select } from './dom.js';
/** A view's module, imported once, when first asked for (again after a failed import). */
function lazy(load) {
  let loading = null;
  return () => {
    loading ??= load().catch((error) => {
      loading = null;
      throw error;
    });
    return loading;
  };
}

// Each view is loaded when first shown (the callflow view's modules are preloaded by the page).
const VIEWS = [
  ['callflows', 'Callflows', lazy(() => import('./callflows.js'))],
  ['calls', 'Calls', lazy(() => import('./calls.js'))],
  ['modules', 'Modules', lazy(() => import('./modules.js'))],
  ['users', 'Users and devices', lazy(() => import('./directory.js'))],
  ['voicemail', 'Voicemail', lazy(() => import('./voicemail.js'))],
  ['emails', 'Emails', lazy(() => import('./emails.js'))],
  ['operator', 'Operator', lazy(() => import('./operator.js'))],
];

/** The view the address names (the first, callflows, when it names none) and what follows. */
function viewOf(hash) {
  const [name, ...rest] = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  return [VIEWS.find(([id]) => id === name) ?? VIEWS[0], rest];
}

/** Who is signed in and which account is in view. */
const session = { role: null, account: null, accounts: [] };
let stopView = null;

const $ = (id) => document.getElementById(id);

async function signIn(token) {
  setToken(token);
  try {
    const [who, accounts] = await Promise.all([get('/v1/session'), get('/v1/accounts')]);
    session.role = who.role;
    session.accounts = accounts;
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

/** How many times a view was chosen: a view drawn late for an older choice is stopped. */
let routes = 0;

async function route() {
  routes += 1;
  const generation = routes;
  if (stopView) stopView();
  stopView = null;
  const [entry, rest] = viewOf(location.hash);
  if (entry[0] === 'operator' && session.role !== 'operator') {
    location.hash = '#/callflows';
    return;
  }
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.view === entry[0]) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  // Each choice draws into a container of its own: one drawn late for an older choice is
  // never on the page.
  const root = h('div');
  fill($('view'), root);
  document.title = `${entry[1]} · cfhost console`;
  if (!session.account && entry[0] !== 'operator') {
    fill(root, h('h1', {}, entry[1]), h('p', {}, 'There is no account to show.'));
    return;
  }
  try {
    const view = await entry[2]();
    const stop = await view.render(root, { ...session }, rest) ?? null;
    // A view left before it was drawn stops at once.
    if (generation !== routes) stop?.();
    else stopView = stop;
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
  // The view's module loads while the token is checked: once it is, the view asks for its
  // data at once, with no frame drawn in between.
  viewOf(location.hash)[0][2]().catch(() => {});
  if (hasToken() && await signIn(sessionStorage.getItem('cfhost-token'))) {
    drawShell();
    await route();
  } else {
    $('signin').hidden = false;
    $('token').focus();
  }
}

start();
