// Small DOM helpers. Elements are built, never parsed from strings, so a photo's name or
// an individual's id always stays text.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

/** An HTML element: h("a", {href: "#"}, "text", child, ...). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, as `h`. */
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** "2024-06-01 14:03" from an ISO 8601 time; the date only when there is no time. */
export function formatDate(iso) {
  if (!iso) return "";
  const [date, time = ""] = iso.split("T");
  return time ? `${date} ${time.slice(0, 5)}` : date;
}

/** A probability as a percentage a person reads at a glance. */
export function percent(probability) {
  const value = probability * 100;
  if (value > 0 && value < 1) return "<1%";
  return `${Math.round(value)}%`;
}

/** Decimal degrees, five places (about a metre), south and west negative. */
export function degrees(value) {
  return value === null || value === undefined ? "" : value.toFixed(5);
}

/** Whether a key press belongs to a text field or an open dialog, not to the page. */
export function typing(event) {
  const target = event.target;
  if (document.querySelector("dialog[open]")) return true;
  return Boolean(target.closest?.("input, textarea, select, [contenteditable]"));
}

/** A button whose click does `run`; it gives the focus back so that the next Enter is
 * the page's key again, not another click. */
export function button(label, run, attrs = {}) {
  return h("button", {
    type: "button",
    ...attrs,
    onclick: (event) => {
      event.currentTarget.blur();
      run(event);
    },
  }, label);
}

/** Path of the individual's API resource (an id may hold any character but '/' and '%'). */
export function individualPath(id) {
  return `/v1/individuals/${encodeURIComponent(id)}`;
}

/** The interface's own link to an individual's page. */
export function individualLink(id) {
  return `#/individual/${encodeURIComponent(id)}`;
}
