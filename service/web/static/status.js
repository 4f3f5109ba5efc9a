// What the service runs with, from /ready: the models loaded, how photos are identified,
// what the catalogue holds, and the version.

import { h } from "./dom.js";

const POLL_MS = 2000;

/** /ready's answer: {ready: true, body} when open, {ready: false, body} while opening. */
export async function readiness() {
  const response = await fetch("/ready");
  return { ready: response.ok, body: await response.json() };
}

function row(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

/** The status page; while the catalogue opens it says how far it got, and polls. */
export async function showStatus(page, isCurrent) {
  const version = document.querySelector("meta[name=whaleid-version]")?.content ?? "unknown";
  let state;
  try {
    state = await readiness();
  } catch {
    if (isCurrent()) page.replaceChildren(h("p", { class: "error" }, "The service cannot be reached."));
    return;
  }
  if (!isCurrent()) return;
  const body = state.body;
  if (!state.ready) {
    // The detail says how far the opening has got (done of total) already.
    page.replaceChildren(h("div", { class: "status-page" }, h("h1", {}, "Status"),
      h("p", { class: body.status === "failed" ? "error" : "" }, `${body.status}: ${body.detail}`),
      h("dl", {}, row("version", version))));
    if (body.status !== "failed") setTimeout(() => isCurrent() && showStatus(page, isCurrent), POLL_MS);
    return;
  }
  const counts = body.counts;
  page.replaceChildren(h("div", { class: "status-page", "data-ready": "true" },
    h("h1", {}, "Status"),
    h("dl", {},
      row("version", version),
      row("identification", body.identification),
      row("gate", body.gate),
      row("locator", body.locator ?? "none reported: the box is the whole photo"),
      row("embedder and other deep models", body.models.length ? body.models.join(", ") : "none (weight-free)"),
      row("local features", `${body.extractor.name} ${body.extractor.version}`),
      row("individuals", String(counts.individuals)),
      row("photos searchable", String(counts.images)),
      row("photos stored", String(counts.stored_images)),
      row("local descriptors", String(counts.descriptors)),
      row("embeddings", String(counts.embeddings)),
      row("centroids", String(counts.centroids)),
      row("database", body.database))));
}
