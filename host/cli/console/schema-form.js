// A form for a node's data, made from its module's JSON schema (what `GET /v1/modules` says
// the module declares). It checks nothing itself: the API validates on save, and its 400 is
// shown at the node. Keys the schema does not list are kept as they are.

import { field, h, select } from './dom.js';

/** The schema of `property`, with a local `$ref` (`#/$defs/...`) resolved. */
function resolve(schema, property) {
  const ref = property?.$ref;
  if (typeof ref === 'string' && ref.startsWith('#/$defs/')) {
    return { ...schema.$defs?.[ref.slice(8)], ...property, $ref: undefined };
  }
  return property ?? {};
}

/** The one non-null type of `property` (`["integer", "null"]` is `integer`). */
function typeOf(property) {
  const types = Array.isArray(property.type) ? property.type : [property.type];
  return types.find((t) => t && t !== 'null') ?? (property.enum ? 'string' : 'json');
}

/**
 * The fields of `data` (changed in place) under `schema`; `onChange()` after each change.
 * Ids start with `prefix`.
 */
export function schemaForm(schema, data, onChange, prefix) {
  const properties = Object.entries(schema?.properties ?? {});
  if (properties.length === 0) {
    // A module that declares no fields (or one this account cannot see): the data as JSON.
    const area = h('textarea', {
      name: 'data', rows: 6, class: 'json', value: JSON.stringify(data, null, 2),
      oninput: (e) => {
        try {
          const parsed = JSON.parse(e.target.value);
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
          for (const key of Object.keys(data)) delete data[key];
          Object.assign(data, parsed);
          area.removeAttribute('aria-invalid');
          onChange();
        } catch {
          area.setAttribute('aria-invalid', 'true');
        }
      },
    });
    return field(`${prefix}-json`, 'Data (JSON object)', area, 'The module declares no fields; applied when it parses.');
  }
  return h('fieldset', { class: 'schema-form' },
    h('legend', {}, `Data of ${schema.title ?? 'the module'}`),
    properties.map(([key, raw]) => control(`${prefix}-${key}`, key, resolve(schema, raw), data, onChange)));
}

function control(id, key, property, data, onChange) {
  const type = typeOf(property);
  const label = property.title ?? key;
  const saysDefault = /\bdefault\b/.test(property.description ?? '');
  const defaulted = property.default !== undefined && !saysDefault ? `(default ${JSON.stringify(property.default)})` : '';
  const hint = [property.description, defaulted].filter(Boolean).join(' ') || null;
  const value = data[key];
  const set = (next) => {
    if (next === undefined) delete data[key];
    else data[key] = next;
    onChange();
  };
  if (property.enum) {
    const options = [['', '(not set)'], ...property.enum.map((v) => [String(v), String(v)])];
    return field(id, label, select(options, value === undefined ? '' : String(value), {
      name: key, onchange: (e) => set(e.target.value === '' ? undefined : e.target.value),
    }), hint);
  }
  if (type === 'boolean') {
    const options = [['', '(not set)'], ['true', 'yes'], ['false', 'no']];
    return field(id, label, select(options, value === undefined ? '' : String(value), {
      name: key, onchange: (e) => set(e.target.value === '' ? undefined : e.target.value === 'true'),
    }), hint);
  }
  if (type === 'integer' || type === 'number') {
    return field(id, label, h('input', {
      type: 'number', name: key, inputmode: 'numeric',
      step: type === 'integer' ? '1' : 'any',
      min: property.minimum, max: property.maximum,
      value: value === undefined || value === null ? '' : String(value),
      // What is typed goes to the API as typed (a number when it reads as one), so that
      // the API, not the browser, says what is wrong with it.
      oninput: (e) => {
        const text = e.target.value.trim();
        set(text === '' ? undefined : (Number.isFinite(Number(text)) ? Number(text) : text));
      },
    }), hint);
  }
  if (type === 'string') {
    return field(id, label, h('input', {
      type: 'text', name: key, value: value ?? '',
      oninput: (e) => set(e.target.value === '' ? undefined : e.target.value),
    }), hint);
  }
  const items = resolve({}, property.items);
  if (type === 'array' && ['string', 'integer', 'number'].includes(typeOf(items))) {
    return field(id, label, h('textarea', {
      name: key, rows: 3, value: Array.isArray(value) ? value.join('\n') : '',
      oninput: (e) => {
        const lines = e.target.value.split('\n').map((l) => l.trim()).filter(Boolean);
        const numeric = typeOf(items) !== 'string';
        set(lines.length === 0 ? undefined : lines.map((l) => (numeric && Number.isFinite(Number(l)) ? Number(l) : l)));
      },
    }), `${hint ?? ''} One per line.`.trim());
  }
  // Objects and lists of objects: as JSON, applied when it parses.
  const area = h('textarea', {
    name: key, rows: 4, class: 'json',
    value: value === undefined ? '' : JSON.stringify(value, null, 2),
    oninput: (e) => {
      const text = e.target.value.trim();
      try {
        set(text === '' ? undefined : JSON.parse(text));
        area.removeAttribute('aria-invalid');
      } catch {
        area.setAttribute('aria-invalid', 'true');
      }
    },
  });
  return field(id, label, area, `${hint ?? ''} As JSON.`.trim());
}
