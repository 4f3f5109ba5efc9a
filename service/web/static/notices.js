// Messages at the top of the page: what an action did, or why it failed.

import { button, h } from "./dom.js";

const INFO_MS = 4000;

/** Show a message; errors stay until dismissed. `actions` are [{label, run}] buttons. */
export function notify(message, { kind = "info", actions = [] } = {}) {
  const host = document.getElementById("notices");
  const notice = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, message),
    actions.map(({ label, run }) => button(label, () => { notice.remove(); run(); })),
    button("×", () => notice.remove(), { class: "dismiss", "aria-label": "dismiss" }));
  host.append(notice);
  while (host.children.length > 4) host.firstElementChild.remove();
  if (kind !== "error") setTimeout(() => notice.remove(), INFO_MS);
  return notice;
}
