// Testing a cfhost module without the host: a scripted call, like the Rust SDK's
// `cfhost_sdk::testing`. The module's imports (`cfhost:callflow/...`) reach the call that is
// running it (hooks.js sends them here), which records what the module did.
//
//   import { ScriptedCall } from './cfhost/testing.js';
//   import * as module from './my_module.js';
//
//   const call = new ScriptedCall({ callerIdNumber: '+15550001234' }).children(['match', '_']);
//   assert.deepEqual(call.handle(module, { regex: '^\\+1' }), { tag: 'continue-to', val: ['match'] });
//   assert.deepEqual(call.logs, [['info', '...']]);

/** The longest caller id part the host takes, in bytes. */
const MAX_CALLER_ID_BYTES = 128;

/** What the module threw from `handle` or `onTermination`: the node's error. */
export class ModuleError extends Error {}

/** An error a host import returns (`result`'s `err`), as componentize-js throws it. */
export class ComponentError extends Error {
  constructor(payload) {
    super(typeof payload === 'string' ? payload : JSON.stringify(payload));
    this.payload = payload;
  }
}

let current = null;

/** The scripted call running now, as interface `name` sees it (used by hooks.js). */
export function host(name) {
  if (current === null) {
    throw new Error(`cfhost:callflow/${name} was called outside ScriptedCall.handle or .terminate`);
  }
  return current.imports;
}

/** A call for a module to run in: its facts, and what the module did to it. */
export class ScriptedCall {
  /**
   * `info` sets the call's facts (camelCase, as the call's methods are named); the defaults are
   * an inbound call from +15550009999 to +15550001000 in account `account-1`.
   */
  constructor(info = {}) {
    this.info = {
      id: 'call-1',
      accountId: 'account-1',
      request: '+15550001000',
      callerIdName: undefined,
      callerIdNumber: '+15550009999',
      calleeIdName: undefined,
      calleeIdNumber: undefined,
      fromUser: undefined,
      fromRealm: undefined,
      toUser: undefined,
      toRealm: undefined,
      authorizingType: undefined,
      authorizingId: undefined,
      sipHeaders: [],
      ...info,
    };
    this.flags = { bridged: false, messageLeft: false };
    this.account = { id: this.info.accountId, name: undefined, realm: undefined, timezone: undefined };
    this.users = [];
    this.childKeys = ['_'];
    this.bridgeResults = [];
    this.answered = false;
    this.bridges = [];
    this.hangups = [];
    this.notifications = [];
    this.callbacks = [];
    this.logs = [];
    this.imports = this.#imports();
  }

  /** The keys of the node's children (by default `_` alone). */
  children(keys) {
    this.childKeys = [...keys];
    return this;
  }

  /** Adds a user to the account's directory. */
  user(user) {
    this.users.push({ email: undefined, firstName: undefined, lastName: undefined, endpoints: [], ...user });
    return this;
  }

  /** What the next bridge returns (in order; `{ tag: 'answered' }` once they run out). */
  bridgeResult(result) {
    this.bridgeResults.push(result);
    return this;
  }

  /** The caller id as it is now (after a module set it). */
  get callerId() {
    return { name: this.info.callerIdName, number: this.info.callerIdNumber };
  }

  /** Runs `module.handle` for this call with node data `data` (an object): its outcome. */
  handle(module, data = {}) {
    return this.#run(() => module.handle(this.#resource(), JSON.stringify(data)));
  }

  /** Runs `module.onTermination` for this call with `hangup` and the registered `state`. */
  terminate(module, hangup, state) {
    return this.#run(() => module.onTermination(this.#resource(), hangup, state));
  }

  #run(body) {
    if (current !== null) {
      throw new Error('a scripted call is already running a module');
    }
    current = this;
    try {
      return body();
    } catch (error) {
      // componentize-js turns a thrown value into the export's `err`; an Error object traps.
      if (error instanceof Error) {
        throw error;
      }
      throw new ModuleError(String(error?.payload ?? error));
    } finally {
      current = null;
    }
  }

  #resource() {
    const info = this.info;
    const call = this;
    return {
      id: () => info.id,
      accountId: () => info.accountId,
      request: () => info.request,
      callerIdName: () => info.callerIdName,
      callerIdNumber: () => info.callerIdNumber,
      calleeIdName: () => info.calleeIdName,
      calleeIdNumber: () => info.calleeIdNumber,
      fromUser: () => info.fromUser,
      fromRealm: () => info.fromRealm,
      toUser: () => info.toUser,
      toRealm: () => info.toRealm,
      authorizingType: () => info.authorizingType,
      authorizingId: () => info.authorizingId,
      authorizedBy: () => authorizedBy(info),
      sipHeader: (name) =>
        info.sipHeaders.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1],
      sipHeaders: () => info.sipHeaders.map(([n, v]) => [n, v]),
      currentFlags: () => ({ ...call.flags }),
      setMessageLeft: () => {
        call.flags.messageLeft = true;
      },
      setCallerId: (name, number) => {
        for (const part of [name, number]) {
          if (part !== undefined && (byteLength(part) > MAX_CALLER_ID_BYTES || /\p{Cc}/u.test(part))) {
            throw new ComponentError({
              tag: 'invalid',
              val: `a caller id part must be at most ${MAX_CALLER_ID_BYTES} bytes without control characters`,
            });
          }
        }
        if (name !== undefined) info.callerIdName = name;
        if (number !== undefined) info.callerIdNumber = number;
      },
    };
  }

  #imports() {
    const call = this;
    return {
      childKeys: () => [...call.childKeys],
      settings: () => ({ ...call.account }),
      answer: () => {
        call.answered = true;
      },
      bridge: (request) => {
        call.bridges.push(request);
        const result = call.bridgeResults.shift() ?? { tag: 'answered' };
        if (result.tag === 'answered') call.flags.bridged = true;
        return result;
      },
      recordVoicemail: () => ({ tag: 'caller-hung-up' }),
      hangup: (cause) => {
        call.hangups.push(cause);
      },
      lookupUsers: (ids) => ids.map((id) => call.users.find((u) => u.id === id)),
      publish: (notification) => {
        call.notifications.push(notification);
      },
      registerTermination: (state) => {
        if (!call.callbacks.some((s) => equalBytes(s, state))) call.callbacks.push(Uint8Array.from(state));
      },
      log: (level, message) => {
        call.logs.push([level, message]);
      },
    };
  }
}

function authorizedBy(info) {
  if (info.authorizingType === undefined) return undefined;
  if (info.authorizingType === 'resource' && info.authorizingId !== undefined) {
    return { tag: 'trunk', val: info.authorizingId };
  }
  if (info.authorizingType === 'device' && info.authorizingId !== undefined) {
    return { tag: 'device', val: info.authorizingId };
  }
  return { tag: 'other', val: [info.authorizingType, info.authorizingId] };
}

const byteLength = (text) => new TextEncoder().encode(text).length;
const equalBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Checks a module's description as the host does when it loads it; returns it. */
export function checkDescription(module) {
  const description = module.describe();
  if (!/^[a-z][a-z0-9_]*$/.test(description.name)) {
    throw new Error(`name ${JSON.stringify(description.name)}: lower case letters, digits and _`);
  }
  const schema = JSON.parse(description.dataSchema);
  if (typeof schema !== 'object' || schema === null) {
    throw new Error('the data schema is not a JSON object');
  }
  const known = ['call-control', 'directory', 'notify', 'callbacks', 'log', 'clock'];
  for (const capability of description.capabilities) {
    if (!known.includes(capability)) throw new Error(`unknown capability ${capability}`);
  }
  return description;
}
