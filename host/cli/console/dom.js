// Building the page without HTML strings: every value is text, never markup.

const PROPERTIES = new Set(['value', 'checked', 'selected', 'hidden', 'disabled', 'open', 'multiple', 'required']);

/** An element `tag` with `attrs` (`onclick`-style keys add listeners) and `children`. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      element.className = value;
    } else if (PROPERTIES.has(key)) {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces what `element` holds with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A label and its control, joined by id; `hint` is read with the control. */
export function field(id, label, control, hint) {
  control.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('small', { id: hintId, class: 'hint' }, hint) : null);
}

/** A `<select>` of `options` (strings or [value, label]) with `selected` chosen. */
export function select(options, selected, attrs = {}) {
  return h('select', attrs, options.map((option) => {
    const [value, label] = Array.isArray(option) ? option : [option, option];
    return h('option', { value, selected: value === selected }, label);
  }));
}

/** A live region that says what happened: `kind` is `ok` or `error`. */
export function say(region, text, kind = 'ok') {
  region.className = `message ${kind}`;
  region.textContent = text;
}

/** A region for `say`: polite for news, assertive for errors (role alert). */
export function messageRegion(id) {
  return h('p', { id, class: 'message', role: 'status', 'aria-live': 'polite' });
}

/** A table with a caption, `columns` and `rows` (arrays of cells). */
export function table(caption, columns, rows, attrs = {}) {
  return h('table', attrs,
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.length === 0
      ? h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, 'None.'))
      : rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell))))));
}

/** A Unix time in seconds as local date and time. */
export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : '';
}
