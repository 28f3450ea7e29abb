// The console of a running `cfhost serve`, used in Debian's headless Chromium as a person
// would, checked by axe-core on every view. host/cli/tests/process/console.rs prepares the
// server (two accounts, a device registered over SIP, a SIP call that ended, a voicemail box
// with a message, a module quarantined after five traps, two module files to upload) and runs
// this file with `node --test`, saying where everything is in the environment:
//   CFHOST_URL, CFHOST_OPERATOR_TOKEN, CFHOST_ACCOUNT_TOKEN (of CFHOST_ACCOUNT),
//   CFHOST_OTHER_ACCOUNT, CFHOST_BAD_MODULE and CFHOST_GOOD_MODULE (.wasm files to upload: no
//   component, and the `versioned` module), CFHOST_BOX (a box with one message), CHROMIUM
//   (default /usr/bin/chromium), CFHOST_SCREENSHOTS (a folder to save a screenshot of each view
//   in; none when unset).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const URL_ = env('CFHOST_URL');
const OPERATOR = env('CFHOST_OPERATOR_TOKEN');
const ACCOUNT_TOKEN = env('CFHOST_ACCOUNT_TOKEN');
const ACCOUNT = env('CFHOST_ACCOUNT');
const OTHER = env('CFHOST_OTHER_ACCOUNT');
const BAD_MODULE = env('CFHOST_BAD_MODULE');
const GOOD_MODULE = env('CFHOST_GOOD_MODULE');
const BOX = env('CFHOST_BOX');
const SHOTS = process.env.CFHOST_SCREENSHOTS;
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const CALLFLOW = 'seed_missed_call_alert';

let browser;
let page;
const pageErrors = [];
/** Every address the page asked for, whatever the view. */
const requested = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
  });
  // The page's policy forbids inline scripts; axe-core is injected as one.
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('request', (request) => requested.push(request.url()));
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
}, { timeout: 30_000 });

async function api(method, path, token, body) {
  const response = await fetch(`${URL_}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

async function open(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForFunction((h) => document.title && location.hash === h, hash);
}

/** No axe-core violation of WCAG 2 A and AA on the page as it is now. */
async function accessible(what) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => {
    const { violations } = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')})`);
  });
  assert.deepEqual(result, [], `${what}: axe-core found violations`);
}

async function shot(name) {
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

async function signIn(token) {
  await page.goto(`${URL_}/`);
  await page.evaluate(() => sessionStorage.clear());
  await page.goto(`${URL_}/`);
  await page.getByLabel(/API token/).fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('the page and its files come from the server, with a policy that keeps them there', async () => {
  const answer = await fetch(`${URL_}/`);
  assert.equal(answer.status, 200);
  assert.match(answer.headers.get('content-type'), /^text\/html/);
  const policy = answer.headers.get('content-security-policy');
  for (const rule of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
    assert.ok(policy.includes(rule), `${rule} in ${policy}`);
  }
  assert.equal(answer.headers.get('x-content-type-options'), 'nosniff');
  const html = await answer.text();
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'nothing is fetched from elsewhere');
  const missing = await fetch(`${URL_}/console/../../etc/passwd`);
  assert.equal(missing.status, 404);
  const unknown = await fetch(`${URL_}/console/nothing.js`);
  assert.equal(unknown.status, 404);
  assert.ok((await unknown.json()).error);
});

test('a wrong token opens nothing and says so; the sign-in form is accessible', async () => {
  await signIn('not-a-token');
  await page.getByRole('alert').filter({ hasText: 'opens nothing' }).waitFor();
  assert.equal(await page.locator('#nav').isHidden(), true);
  await accessible('sign-in');
  await shot('sign-in');
});

test('an account signs in and sees its own account only', async () => {
  await signIn(ACCOUNT_TOKEN);
  await page.locator('#nav a').first().waitFor();
  const views = await page.locator('#nav a').allInnerTexts();
  assert.ok(!views.includes('Operator'), `an account sees no operator view: ${views}`);
  await page.getByText(`Account ${ACCOUNT}`).waitFor();
  await page.getByRole('link', { name: CALLFLOW }).waitFor();
  await accessible('callflows list');
});

test('a callflow is a tree; a node is chosen with the keyboard and its timeout changed and saved', async () => {
  await open(`#/callflows/${CALLFLOW}`);
  await page.locator('.tree').waitFor();
  const nodes = await page.locator('.node-button').allInnerTexts();
  assert.deepEqual(nodes, ['missed_call_alert', 'user', 'voicemail']);
  const edges = await page.locator('.tree .edge').allInnerTexts();
  assert.deepEqual(edges, ['_', '_']);
  // Keyboard only: Tab to the `user` node's button, Enter to choose it.
  await page.locator('body').focus();
  let found = false;
  for (let i = 0; i < 60 && !found; i += 1) {
    await page.keyboard.press('Tab');
    found = await page.evaluate(() => document.activeElement?.textContent === 'user' && document.activeElement.classList.contains('node-button'));
  }
  assert.ok(found, 'the user node is reached with Tab');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Node user at flow.children._' }).waitFor();
  assert.equal(await page.locator('.node.selected .node-button').innerText(), 'user');
  await accessible('callflow editor');
  await page.getByLabel('timeout').fill('35');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#save-message').filter({ hasText: /^Saved/ }).waitFor();
  const stored = await api('GET', `/v1/accounts/${ACCOUNT}/callflows/${CALLFLOW}`, ACCOUNT_TOKEN);
  assert.equal(stored.body.flow.children._.data.timeout, 35);
  await shot('callflow');
});

test('data that breaks the module schema is refused, and the API error is shown at the node', async () => {
  await page.getByLabel('timeout').fill('-5');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#save-message').filter({ hasText: 'Not saved' }).waitFor();
  const invalid = page.locator('.node.invalid');
  assert.equal(await invalid.count(), 1);
  assert.equal(await invalid.getAttribute('data-path'), 'flow.children._');
  const text = await invalid.locator('.node-error').innerText();
  assert.match(text, /^data breaks the schema of module `user`: at data\/timeout: -5 is less than the minimum of 0$/);
  assert.equal(await page.getByLabel('timeout').getAttribute('aria-invalid'), 'true');
  const stored = await api('GET', `/v1/accounts/${ACCOUNT}/callflows/${CALLFLOW}`, ACCOUNT_TOKEN);
  assert.equal(stored.body.flow.children._.data.timeout, 35, 'nothing was written');
  await shot('callflow-error');
  await page.getByLabel('timeout').fill('20');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#save-message').filter({ hasText: /^Saved/ }).waitFor();
  assert.equal(await page.locator('.node.invalid').count(), 0);
});

test('nodes are added, moved and removed, and numbers edited', async () => {
  await page.locator('.node-button', { hasText: 'user' }).click();
  await page.locator('.node-pane summary', { hasText: 'Children' }).click();
  await page.getByLabel('Child label').fill('NO_ANSWER');
  await page.getByLabel('Child module').selectOption('missed_call_alert');
  await page.getByRole('button', { name: 'Add child' }).click();
  await page.getByRole('heading', { name: 'Node missed_call_alert at flow.children._.children.NO_ANSWER' }).waitFor();
  // Move it under the root as BUSY.
  await page.locator('.node-pane summary', { hasText: 'Children' }).click();
  await page.getByLabel('Move under').selectOption({ label: 'missed_call_alert at flow' });
  await page.getByLabel('As child').fill('BUSY');
  await page.getByRole('button', { name: 'Move', exact: true }).click();
  await page.getByRole('heading', { name: 'Node missed_call_alert at flow.children.BUSY' }).waitFor();
  await page.getByLabel('Numbers').fill('+15554441111, 4400');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#save-message').filter({ hasText: /^Saved/ }).waitFor();
  let stored = (await api('GET', `/v1/accounts/${ACCOUNT}/callflows/${CALLFLOW}`, ACCOUNT_TOKEN)).body;
  assert.equal(stored.flow.children.BUSY.module, 'missed_call_alert');
  assert.equal(stored.flow.children._.children.NO_ANSWER, undefined);
  assert.deepEqual(stored.numbers, ['+15554441111', '4400']);
  // Removed again.
  await page.locator('.node-pane summary', { hasText: 'Children' }).click();
  await page.getByRole('button', { name: 'Remove this node' }).click();
  await page.getByLabel('Numbers').fill('+15554441111');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#save-message').filter({ hasText: /^Saved/ }).waitFor();
  stored = (await api('GET', `/v1/accounts/${ACCOUNT}/callflows/${CALLFLOW}`, ACCOUNT_TOKEN)).body;
  assert.equal(stored.flow.children.BUSY, undefined);
  assert.deepEqual(stored.numbers, ['+15554441111']);
});

test('the data of a module that declares no fields is edited as JSON', async () => {
  await open('#/callflows/traps');
  await page.locator('.node-button', { hasText: 'test_fixture' }).click();
  const data = page.getByLabel('Data (JSON object)');
  assert.deepEqual(JSON.parse(await data.inputValue()), { outcome: 'trap' });
  await data.fill('{"outcome": ');
  assert.equal(await data.getAttribute('aria-invalid'), 'true');
  await data.fill('{"outcome": "continue"}');
  assert.equal(await data.getAttribute('aria-invalid'), null);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#save-message').filter({ hasText: /^Saved/ }).waitFor();
  const stored = await api('GET', `/v1/accounts/${ACCOUNT}/callflows/traps`, ACCOUNT_TOKEN);
  assert.deepEqual(stored.body.flow.data, { outcome: 'continue' });
  await open(`#/callflows/${CALLFLOW}`);
  await page.locator('.tree').waitFor();
});

test('a tried call shows its trace step by step, lights its path and lists notifications and callbacks', async () => {
  await page.getByLabel('Ringing a user').selectOption('no_answer');
  await page.getByLabel('At voicemail, the caller').selectOption('hangup');
  await page.getByRole('button', { name: 'Place the call' }).click();
  await page.locator('.trace li').first().waitFor();
  const trace = await page.locator('.trace li').allInnerTexts();
  assert.ok(trace.some((line) => /node voicemail at flow\.children\._\.children\._/.test(line)), trace.join('\n'));
  const lit = await page.locator('.node.lit').evaluateAll((nodes) => nodes.map((n) => n.dataset.path));
  assert.deepEqual(lit, ['flow', 'flow.children._', 'flow.children._.children._']);
  assert.match(await page.locator('.notifications').innerText(), /notifications\.sip\.missed_call/);
  assert.match(await page.locator('.callbacks').innerText(), /missed_call_alert: ran/);
  await accessible('tried call');
  await shot('try-a-call');
  // Answered: voicemail is not reached, and is no longer lit.
  await page.getByLabel('Ringing a user').selectOption('answer');
  await page.getByRole('button', { name: 'Place the call' }).click();
  await page.waitForFunction(() => document.querySelectorAll('.node.lit').length === 2);
  const litAnswered = await page.locator('.node.lit').evaluateAll((nodes) => nodes.map((n) => n.dataset.path));
  assert.deepEqual(litAnswered, ['flow', 'flow.children._']);
});

test('a module that is no component is refused with the reason; one that is is added and removed', async () => {
  await open('#/modules');
  await page.locator('table caption', { hasText: 'Modules the account can use' }).waitFor();
  await page.getByLabel('Component (.wasm)').setInputFiles(BAD_MODULE);
  await page.getByLabel('Name').fill('broken');
  await page.getByRole('button', { name: 'Upload' }).click();
  const verdict = page.locator('#upload-verdict');
  await verdict.filter({ hasText: 'Refused' }).waitFor();
  assert.match(await verdict.innerText(), /Refused: .*(component|wasm|magic)/i);
  assert.ok(!(await page.locator('table').innerText()).includes('broken'));
  await accessible('modules');
  await shot('modules');
  await page.getByLabel('Component (.wasm)').setInputFiles(GOOD_MODULE);
  await page.getByLabel('Name').fill('versioned');
  await page.getByRole('button', { name: 'Upload' }).click();
  await verdict.filter({ hasText: 'Accepted versioned' }).waitFor();
  const row = page.locator('tr', { hasText: 'this account' });
  assert.match(await row.innerText(), /^versioned/);
  await page.getByRole('button', { name: 'Remove versioned' }).click();
  await verdict.filter({ hasText: 'Removed versioned' }).waitFor();
  assert.equal(await page.locator('tr', { hasText: 'this account' }).count(), 0);
});

test('users and devices are created and edited; a device shows its registration; names are text, never markup', async () => {
  await open('#/users');
  await page.locator('table caption', { hasText: 'Devices' }).waitFor();
  assert.match(await page.locator('.registered').first().innerText(), /registered at sip:/);
  await page.getByLabel('Id').first().fill('hostile');
  await page.getByLabel('First name').fill('<img src=x onerror="window.__xss=1">');
  await page.getByLabel('Email').fill('hostile@example.com');
  await page.getByRole('button', { name: 'Create user' }).click();
  await page.locator('#directory-message').filter({ hasText: 'Saved user hostile' }).waitFor();
  assert.match(await page.locator('table').first().innerText(), /<img src=x onerror/);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  // A device owned by the new user; a second one with the same SIP username is refused.
  await page.getByLabel('Id').nth(1).fill('desk2');
  await page.getByLabel('Owner').selectOption('hostile');
  await page.getByLabel('SIP username').fill('2002');
  await page.getByLabel('SIP password').fill('pw2002');
  await page.getByRole('button', { name: 'Create device' }).click();
  await page.locator('#directory-message').filter({ hasText: 'Saved device desk2' }).waitFor();
  await page.getByLabel('Id').nth(1).fill('desk3');
  await page.getByLabel('SIP username').fill('2002');
  await page.getByLabel('SIP password').fill('pw');
  await page.getByRole('button', { name: 'Create device' }).click();
  await page.locator('#directory-message').filter({ hasText: 'already device `desk2`' }).waitFor();
  // Edited.
  await page.getByRole('button', { name: 'Edit user hostile' }).click();
  await page.getByLabel('Last name').fill('Renamed');
  await page.getByRole('button', { name: 'Save user' }).click();
  await page.locator('#directory-message').filter({ hasText: 'Saved user hostile' }).waitFor();
  const user = await api('GET', `/v1/accounts/${ACCOUNT}/users/hostile`, ACCOUNT_TOKEN);
  assert.equal(user.body.last_name, 'Renamed');
  await accessible('users and devices');
  await shot('users-and-devices');
});

test('a voicemail message plays in the page and is deleted', async () => {
  await open(`#/voicemail/${BOX}`);
  const audio = page.locator('audio').first();
  await audio.waitFor();
  await page.waitForFunction(() => {
    const a = document.querySelector('audio');
    return a && a.readyState >= 1 && a.duration > 0;
  });
  const duration = await audio.evaluate((a) => a.duration);
  assert.ok(duration > 0.9 && duration < 1.1, `the WAV loads: ${duration} s`);
  await audio.evaluate((a) => a.play());
  await page.waitForFunction(() => document.querySelector('audio').currentTime > 0.1);
  await accessible('voicemail');
  await shot('voicemail');
  await page.getByRole('button', { name: /^Delete message/ }).click();
  await page.getByText('No messages.').waitFor();
  const left = await api('GET', `/v1/accounts/${ACCOUNT}/vmboxes/${BOX}/messages`, ACCOUNT_TOKEN);
  assert.deepEqual(left.body.messages, []);
});

test('a template is edited with its preview rendered beside, and one that does not compile says why', async () => {
  await open('#/emails/missed_call');
  await page.locator('.preview-subject').waitFor();
  await page.getByLabel('Subject').fill('Missed call from {{ caller_id.name_number }}!');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.locator('.preview-subject', { hasText: 'Missed call from' }).waitFor();
  assert.doesNotMatch(await page.locator('.preview-subject').innerText(), /\{\{/);
  const frame = page.frameLocator('iframe.preview-html');
  assert.ok((await frame.locator('body').innerText()).length > 0, 'the HTML part is rendered');
  await accessible('emails');
  await shot('emails');
  await page.getByLabel('Text body').fill('{% if %}');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.locator('.preview .error', { hasText: 'does not compile' }).waitFor();
});

test('the calls view lists the SIP call that ended, with its trace', async () => {
  await open('#/calls');
  await page.locator('table caption', { hasText: 'Calls in progress' }).waitFor();
  const recent = page.locator('.recent > li');
  await recent.first().waitFor();
  await recent.first().locator('summary').click();
  assert.match(await recent.first().innerText(), /INVITE .* from \+15550001234 \(trunk carrier\)/);
  await accessible('calls');
  await shot('calls');
});

test('nothing of the other account is shown to this one, and the API refuses it', async () => {
  // Each view, once what it shows is loaded.
  const views = {
    '#/callflows': 'caption:has-text("Callflows of the account")',
    '#/modules': 'caption:has-text("Modules the account can use")',
    '#/users': 'caption:has-text("Devices")',
    '#/voicemail': 'caption:has-text("Voicemail boxes")',
    '#/emails': '.preview-subject',
    '#/calls': '.recent > li',
  };
  for (const [hash, loaded] of Object.entries(views)) {
    await open(hash);
    await page.locator(loaded).first().waitFor();
    assert.ok(!(await page.locator('body').innerText()).includes(OTHER), `${hash} shows ${OTHER}`);
  }
  await page.evaluate(() => { location.hash = '#/operator'; });
  await page.waitForFunction(() => location.hash === '#/callflows');
  const refused = await page.evaluate(async (other) => {
    const token = sessionStorage.getItem('cfhost-token');
    const answer = await fetch(`/v1/accounts/${other}/callflows`, { headers: { Authorization: `Bearer ${token}` } });
    return answer.status;
  }, OTHER);
  assert.equal(refused, 403);
});

test('the operator sees every account, calls per second, failures by module, quarantines and the outbox', async () => {
  await signIn(OPERATOR);
  await page.locator('#nav a', { hasText: 'Operator' }).click();
  await page.locator('#figure-accounts').waitFor();
  assert.equal(await page.locator('#figure-accounts').innerText(), '2');
  await page.waitForFunction(() => /^\d+\.\d$/.test(document.getElementById('figure-cps')?.textContent ?? ''));
  const accounts = await page.locator('table').first().innerText();
  assert.ok(accounts.includes(ACCOUNT) && accounts.includes(OTHER), accounts);
  assert.match(await page.locator('table', { hasText: 'Failures by module' }).innerText(), /missed_call_alert/);
  await page.locator('table caption', { hasText: 'Quarantined now' }).waitFor();
  assert.match(await page.locator('table', { hasText: 'Quarantined now' }).innerText(), new RegExp(`${ACCOUNT}\\s+test_fixture`));
  assert.match(await page.locator('table', { hasText: 'Failures by module' }).innerText(), /test_fixture[^\n]*trap 5/);
  assert.equal(await page.locator('#figure-outbox').innerText(), 'no broker');
  await accessible('operator');
  await shot('operator');
  // The operator chooses the other account and sees its callflows.
  await page.getByLabel('Account', { exact: true }).selectOption(OTHER);
  await open('#/callflows');
  await page.getByRole('link', { name: 'seed_notification' }).waitFor();
});

test('no script error happened on any page, and nothing was asked of another server', () => {
  assert.deepEqual(pageErrors, []);
  const elsewhere = requested.filter((url) => !url.startsWith(`${URL_}/`) && !url.startsWith('blob:') && !url.startsWith('data:'));
  assert.deepEqual(elsewhere, []);
  assert.ok(requested.length > 50, `${requested.length} requests seen`);
});
