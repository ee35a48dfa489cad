// Small DOM helpers. Data reaches the page only as text nodes and
// attribute values, never as markup.

// h makes an element. attrs: "class" sets className, "on<event>" adds a
// listener, null/false leave an attribute out, true sets it empty; anything
// else becomes an attribute. children are nodes or strings (as text),
// nested arrays are flattened, null/false are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, children);
  return el;
}

// add appends children to el as h does.
export function add(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// fill replaces el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}

// setText sets el's text only if it differs, so unchanged parts of the
// page are not touched.
export function setText(el, text) {
  text = text == null ? '' : String(text);
  if (el.textContent !== text) el.textContent = text;
}

// status is a coloured dot and its word: colour is never the only signal.
// The dot's colour comes from its container's data-state or data-online
// (style.css); cls adds classes to the dot.
export function status(word, cls) {
  return [h('span', { class: `dot ${cls || ''}`.trim(), 'aria-hidden': 'true' }), h('span', { class: 'word' }, word)];
}

// Flash messages: one line at the top for errors no view shows itself.
let flashEl = null;

export function flash(message) {
  flashEl = flashEl || document.getElementById('flash');
  if (!flashEl) return;
  if (!message) {
    flashEl.hidden = true;
    flashEl.replaceChildren();
    return;
  }
  fill(flashEl, h('span', null, message),
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss', onclick: () => flash('') }, '×'));
  flashEl.hidden = false;
}

// table makes a table with a header row of heads and an empty tbody.
export function table(attrs, heads) {
  const tbody = h('tbody');
  const t = h('table', attrs,
    h('thead', null, h('tr', null, heads.map((x) => h('th', { scope: 'col' }, x)))),
    tbody);
  return { table: t, tbody };
}
