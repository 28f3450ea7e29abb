// check_cid: KAZOO's `cf_check_cid`, as a cfhost module written in JavaScript.
//
// With `use_absolute_mode` false (the default), the caller id number is matched against the
// node's `regex` (default `.*`): a match continues to the `match` child, else to `nomatch`.
// With it true, a caller id that matches the regex continues to the child keyed by the number
// itself, else to `nomatch`. When a `match` (or number) child is taken and the node sets
// `caller_id.external`, the caller id is set for what follows in the call. A missing `match`
// or `nomatch` child continues to `_`, as KAZOO's `cf_exe:continue` does.
//
// Differences from KAZOO: KAZOO applies `caller_id` only when its name, number and `user_id`
// are all set (cfhost has no owner to set, and applies whichever of name and number is
// given); in absolute mode KAZOO continues to `_` when no child is keyed by the number,
// cfhost tries `nomatch` first. A `regex` that does not compile is the node's error (the
// host logs it and continues to `_`); KAZOO's process crashes.

import { log } from 'cfhost:callflow/log@0.3.1';
import { childKeys } from 'cfhost:callflow/node@0.3.1';

// KAZOO's `callflows.check_cid.json`, as it is.
const DATA_SCHEMA = {
  $schema: 'http://json-schema.org/draft-04/schema#',
  _id: 'callflows.check_cid',
  description: 'Validator for the check_cid callflow data object',
  properties: {
    caller_id: {
      properties: {
        external: {
          properties: {
            name: { description: 'Update external Caller ID Name', type: 'string' },
            number: { description: 'Update external Caller ID Number', type: 'string' },
          },
          type: 'object',
        },
      },
      type: 'object',
    },
    regex: {
      default: '.*',
      description: 'Determine match/nomatch when use_absolute_mode is false',
      type: 'string',
    },
    use_absolute_mode: {
      default: false,
      description: 'If true, direct call down a branch that matches the caller ID',
      type: 'boolean',
    },
    user_id: {
      description: 'kazoo User ID to use as owner_id instead of detected owner_id',
      type: 'string',
    },
  },
  type: 'object',
};

export function describe() {
  return {
    name: 'check_cid',
    version: '0.1.0',
    summary: "Branches on the caller id number, as KAZOO's cf_check_cid (match, nomatch or the number's child)",
    dataSchema: JSON.stringify(DATA_SCHEMA),
    capabilities: ['call-control', 'log'],
  };
}

const continueTo = (...keys) => ({ tag: 'continue-to', val: keys });

export function handle(call, dataJson) {
  const data = JSON.parse(dataJson);
  const number = call.callerIdNumber() ?? '';
  let regex;
  try {
    regex = new RegExp(data.regex ?? '.*');
  } catch (e) {
    throw `regex ${JSON.stringify(data.regex)} does not compile: ${e.message}`;
  }
  if (!regex.test(number)) {
    log('info', `caller id ${JSON.stringify(number)} does not match ${regex.source}`);
    return continueTo('nomatch');
  }
  const key = data.use_absolute_mode === true ? number : 'match';
  if (!childKeys().includes(key)) {
    log('info', `caller id ${JSON.stringify(number)} matches, but there is no child ${JSON.stringify(key)}`);
    return data.use_absolute_mode === true ? continueTo('nomatch') : continueTo();
  }
  const external = data.caller_id?.external ?? {};
  if (external.name !== undefined || external.number !== undefined) {
    try {
      call.setCallerId(nonEmpty(external.name), nonEmpty(external.number));
    } catch (e) {
      // The host refused it (too long, control characters): the node's error.
      throw `caller_id.external was not set: ${JSON.stringify(e?.payload ?? String(e))}`;
    }
    log('info', `caller id set to ${external.name ?? '(kept)'} <${external.number ?? '(kept)'}>`);
  }
  return continueTo(key);
}

export function onTermination() {}

const nonEmpty = (value) => (value === undefined || value === '' ? undefined : value);
