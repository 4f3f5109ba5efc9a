// Modal dialogs: a form that resolves with its values, or null when cancelled. Enter
// submits, Escape cancels. A dialog given `onSubmit` stays open until that succeeds and
// shows why it did not.

import { h } from "./dom.js";

let fieldCount = 0;

function fieldRow(field) {
  const id = `field-${++fieldCount}`;
  let input;
  let suggestions = null;
  if (field.type === "select") {
    input = h("select", { id, name: field.name },
      field.options.map((option) => h("option", { value: option, selected: option === field.value }, option)));
  } else {
    input = h("input", {
      id,
      name: field.name,
      type: field.type ?? "text",
      value: field.value ?? "",
      multiple: field.multiple,
      accept: field.accept,
      required: field.required,
      list: field.suggest ? `${id}-list` : null,
      autocomplete: "off",
      spellcheck: "false",
    });
    if (field.suggest) suggestions = suggestionList(input, field.suggest, `${id}-list`);
  }
  return { field, input, row: h("label", { class: "field", for: id }, h("span", {}, field.label), input, suggestions) };
}

// Suggestions as the user types: a datalist kept up to date from `suggest(text)`.
function suggestionList(input, suggest, id) {
  const list = h("datalist", { id });
  let asked = 0;
  const refresh = async () => {
    const ticket = ++asked;
    const values = await suggest(input.value).catch(() => []);
    if (ticket === asked) list.replaceChildren(...values.map((value) => h("option", { value })));
  };
  input.addEventListener("input", refresh);
  refresh();
  return list;
}

function valuesOf(rows) {
  const values = {};
  for (const { field, input } of rows) {
    values[field.name] = field.type === "file" ? [...input.files] : input.value.trim();
  }
  return values;
}

/**
 * A form in a modal dialog.
 * @param {object} spec title, message, fields [{name, label, type, value, options}],
 *   confirm (the button's label), danger (a destructive action: Cancel has the focus),
 *   onSubmit(values, progress) (async; a thrown error's message is shown and the dialog
 *   stays open).
 * @returns {Promise<object|null>} the values, or null when cancelled.
 */
export function formDialog({ title, message, fields = [], confirm = "OK", danger = false, onSubmit }) {
  return new Promise((resolve) => {
    const rows = fields.map(fieldRow);
    const status = h("p", { class: "dialog-status", role: "status" });
    const ok = h("button", { type: "submit", class: danger ? "danger" : "primary" }, confirm);
    const cancel = h("button", { type: "button", onclick: () => dialog.close() }, "Cancel");
    const form = h("form", { method: "dialog" },
      h("h2", {}, title),
      message && h("p", { class: "dialog-message" }, message),
      rows.map((r) => r.row),
      status,
      h("div", { class: "dialog-buttons" }, cancel, ok));
    const dialog = h("dialog", { class: danger ? "danger" : "" }, form);
    let result = null;

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = valuesOf(rows);
      if (onSubmit) {
        ok.disabled = true;
        status.className = "dialog-status";
        try {
          await onSubmit(values, (text) => { status.textContent = text; });
        } catch (error) {
          status.textContent = error.message;
          status.className = "dialog-status error";
          ok.disabled = false;
          return;
        }
      }
      result = values;
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = rows.find((r) => r.field.type !== "file" && r.field.type !== "select")?.input;
    if (danger) cancel.focus();
    else if (first) { first.focus(); first.select?.(); }
    else ok.focus();
  });
}

/** Ask before doing something; resolves true to go ahead. */
export async function confirmDialog({ title, message, confirm = "OK", danger = false, onSubmit }) {
  return (await formDialog({ title, message, confirm, danger, onSubmit })) !== null;
}
