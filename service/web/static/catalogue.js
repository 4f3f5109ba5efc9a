// The catalogue: the individuals (search, species, export), one individual's page with
// its sightings, and the changes a curator makes (enrol, rename, merge, delete). Each
// change is one API call; the destructive ones are confirmed in a dialog first.

import * as api from "./api.js";
import { confirmDialog, formDialog } from "./dialogs.js";
import { button, degrees, formatDate, h, individualLink, individualPath } from "./dom.js";
import { notify } from "./notices.js";
import { sightingsPlot } from "./plot.js";

const PAGE = 60;
const CARD_SIZE = 256;
const ROW_SIZE = 128;
const SUGGESTIONS = 10;

/** Ids of individuals whose id or name contains `text` (for a field's suggestions). */
async function suggestIds(text, except = null) {
  const query = new URLSearchParams({ limit: SUGGESTIONS });
  if (text.trim()) query.set("search", text.trim());
  const page = await api.getJson(`/v1/individuals?${query}`);
  return page.items.map((i) => i.id).filter((id) => id !== except);
}

function exportButtons(species) {
  const query = species ? `&species=${encodeURIComponent(species)}` : "";
  const save = (format, name) => () => api.download(`/v1/export?format=${format}${query}`, name)
    .catch((error) => notify(`Export failed: ${error.message}`, { kind: "error" }));
  return [
    button("Export CSV", save("csv", "sightings.csv"), { "data-action": "export-csv" }),
    button("Export Darwin Core", save("dwc", "occurrences.csv"), { "data-action": "export-dwc" }),
  ];
}

/** Enrol photos of one individual (created if new), one request per photo; resolves
 * with the individual's id, or null when cancelled. */
export async function enrolDialog({ id = "", species = "" } = {}) {
  const values = await formDialog({
    title: id ? `Add photos of ${id}` : "Enrol photos",
    message: "Photos of one individual; it is created if it is new.",
    fields: [
      { name: "id", label: "Individual's id", value: id, required: true, suggest: (text) => suggestIds(text) },
      { name: "species", label: "Species", value: species },
      { name: "files", label: "Photos", type: "file", multiple: true, accept: "image/*,.heic,.heif", required: true },
    ],
    confirm: "Enrol",
    onSubmit: async (values, progress) => {
      const failures = [];
      for (const [index, file] of values.files.entries()) {
        progress(`enrolling ${index + 1} of ${values.files.length}: ${file.name}`);
        const form = new FormData();
        form.append("file", file, file.name);
        form.append("individual_id", values.id);
        if (values.species) form.append("species", values.species);
        try {
          await api.postForm("/v1/enrol", form);
        } catch (error) {
          if (error.status === 401) throw error;
          failures.push(`${file.name}: ${error.message}`);
        }
      }
      if (failures.length) {
        // Sending them all again is harmless: a photo already enrolled is not stored twice.
        throw new Error(`${values.files.length - failures.length} of ${values.files.length} enrolled;`
          + ` not enrolled: ${failures.join("; ")}`);
      }
    },
  });
  if (!values) return null;
  notify(`${values.files.length} photo(s) enrolled as ${values.id}.`);
  return values.id;
}

// ------------------------------------------------------------------ the list

function card(individual) {
  const img = h("img", { alt: "", loading: "lazy", width: 160, height: 120 });
  if (individual.cover_image_id !== null && individual.cover_image_id !== undefined) {
    api.showPhoto(img, api.thumbnailPath(individual.cover_image_id, CARD_SIZE));
  }
  const count = individual.image_count;
  return h("li", {},
    h("a", { href: individualLink(individual.id), class: "card", "data-id": individual.id },
      img,
      h("strong", {}, individual.id),
      individual.name ? h("span", { class: "name" }, individual.name) : null,
      h("span", { class: "species" }, individual.species ?? "species unknown"),
      h("span", { class: "count" }, `${count} photo${count === 1 ? "" : "s"}`)));
}

/** The individuals page; `params` hold its `search` and `species`. */
export function showIndividuals(page, params, isCurrent) {
  const search = h("input", {
    type: "search", id: "search", value: params.get("search") ?? "", placeholder: "id or name", autocomplete: "off",
  });
  const species = h("input", {
    id: "species-filter", value: params.get("species") ?? "", placeholder: "all", list: "species-seen", autocomplete: "off",
  });
  const seen = h("datalist", { id: "species-seen" });
  const grid = h("ul", { class: "individuals" });
  const status = h("p", { class: "list-status", role: "status" });
  const more = button("More", () => load(grid.children.length), { hidden: true, "data-action": "more" });
  const speciesSeen = new Set();
  let controller = null;

  async function load(offset) {
    controller?.abort();
    controller = new AbortController();
    const filter = { search: search.value.trim(), species: species.value.trim() };
    const query = new URLSearchParams({ limit: PAGE, offset });
    for (const [key, value] of Object.entries(filter)) if (value) query.set(key, value);
    let result;
    try {
      result = await api.getJson(`/v1/individuals?${query}`, { signal: controller.signal });
    } catch (error) {
      if (error.name !== "AbortError") status.textContent = error.message;
      return;
    }
    if (!isCurrent()) return;
    if (offset === 0) grid.replaceChildren();
    grid.append(...result.items.map(card));
    for (const item of result.items) if (item.species && !speciesSeen.has(item.species)) {
      speciesSeen.add(item.species);
      seen.append(h("option", { value: item.species }));
    }
    more.hidden = result.next_offset === null;
    const filtered = filter.search || filter.species;
    status.textContent = grid.children.length
      ? `${grid.children.length}${more.hidden ? "" : "+"} individual${grid.children.length === 1 ? "" : "s"}`
      : filtered ? "No individual matches." : "The catalogue is empty: enrol photos to start.";
    grid.dataset.query = `${filter.search}|${filter.species}`;
    const kept = new URLSearchParams(Object.entries(filter).filter(([, v]) => v));
    history.replaceState(null, "", `#/individuals${kept.size ? `?${kept}` : ""}`);
  }

  search.addEventListener("input", () => load(0));
  species.addEventListener("input", () => load(0));
  page.replaceChildren(
    h("div", { class: "toolbar" },
      h("label", { for: "search" }, "Search "), search,
      h("label", { for: "species-filter" }, "Species "), species, seen,
      button("Enrol photos…", async () => {
        const id = await enrolDialog({ species: species.value.trim() });
        if (id) location.hash = individualLink(id);
      }, { class: "primary", "data-action": "enrol" }),
      h("span", { class: "spacer" }),
      ...exportButtons(species.value.trim())),
    status, grid, more);
  load(0);
}

/** Keys of the individuals page: '/' goes to the search field. */
export function individualsKey(event) {
  if (event.key !== "/") return false;
  document.getElementById("search")?.focus();
  return true;
}

// ------------------------------------------------------------------ one individual

/** The page of one individual: its photos (sightings) and what can be done to it. */
export async function showIndividual(page, id, isCurrent) {
  page.replaceChildren(h("p", { class: "list-status" }, "Loading…"));
  let detail;
  try {
    detail = await api.getJson(individualPath(id));
  } catch (error) {
    if (!isCurrent()) return;
    page.replaceChildren(
      h("p", { class: "error" }, error.status === 404 ? `There is no individual ${id} in the catalogue.` : error.message),
      h("a", { href: "#/individuals" }, "All individuals"));
    return;
  }
  if (isCurrent()) renderIndividual(page, detail, isCurrent);
}

function renderIndividual(page, { individual, images }, isCurrent) {
  const { id } = individual;
  const refresh = (newId = id) => {
    if (newId !== id) location.replace(individualLink(newId));
    else showIndividual(page, id, isCurrent);
  };
  const sightings = [...images].sort((a, b) =>
    (a.taken_at ?? "\uffff").localeCompare(b.taken_at ?? "\uffff") || a.id - b.id);
  const placed = sightings.filter((s) => s.latitude !== null && s.longitude !== null);
  page.replaceChildren(
    h("div", { class: "individual", "data-id": id },
      h("header", {},
        h("h1", {}, id),
        h("p", { class: "about" },
          individual.name ? h("span", { class: "name" }, individual.name) : null,
          h("span", { class: "species" }, individual.species ?? "species unknown"),
          h("span", {}, `${images.length} photo${images.length === 1 ? "" : "s"}`),
          h("span", {}, `in the catalogue since ${formatDate(individual.created_at)}`)),
        h("div", { class: "actions" },
          button("Edit id, name, species…", () => edit(individual).then((newId) => newId && refresh(newId)), { "data-action": "edit" }),
          button("Add photos…", () => enrolDialog({ id, species: individual.species ?? "" }).then((added) => added && refresh(added)), { "data-action": "add-photos" }),
          button("Merge another into this…", () => mergeInto(individual).then((done) => done && refresh()), { "data-action": "merge-into" }),
          button("Delete…", () => remove(individual, images.length), { class: "danger", "data-action": "delete" }),
          h("span", { class: "spacer" }),
          h("a", { href: "#/individuals" }, "All individuals"))),
      h("div", { class: "sightings" },
        h("table", {},
          h("thead", {}, h("tr", {}, ["photo", "file", "taken", "latitude", "longitude", "enrolled"].map((c) => h("th", {}, c)))),
          h("tbody", {}, sightings.map(sightingRow))),
        h("figure", { class: "where" },
          placed.length ? sightingsPlot(placed) : h("p", {}, "No position: these photos carry no GPS."),
          h("figcaption", {}, `${placed.length} of ${sightings.length} photos with a position`)))));
}

function sightingRow(image) {
  const img = h("img", { alt: "", loading: "lazy", width: 96, height: 72 });
  api.showPhoto(img, api.thumbnailPath(image.id, ROW_SIZE));
  return h("tr", { "data-image": image.id },
    h("td", {}, img),
    h("td", {}, image.source_name),
    h("td", {}, image.taken_at ? formatDate(image.taken_at) : "unknown"),
    h("td", { class: "number" }, degrees(image.latitude)),
    h("td", { class: "number" }, degrees(image.longitude)),
    h("td", {}, formatDate(image.created_at)));
}

// Resolves with the individual's id afterwards, or null when nothing changed.
async function edit(individual) {
  let updated = null;
  const values = await formDialog({
    title: `Edit ${individual.id}`,
    message: "A new id renames the individual; its photos follow.",
    fields: [
      { name: "id", label: "Id", value: individual.id, required: true },
      { name: "name", label: "Name", value: individual.name ?? "" },
      { name: "species", label: "Species", value: individual.species ?? "" },
    ],
    confirm: "Save",
    onSubmit: async (values) => {
      const patch = {};
      if (values.id !== individual.id) patch.id = values.id;
      for (const field of ["name", "species"]) {
        if (values[field] === (individual[field] ?? "")) continue;
        if (!values[field]) throw new Error(`The ${field} can be changed, not removed.`);
        patch[field] = values[field];
      }
      if (Object.keys(patch).length) updated = await api.sendJson("PATCH", individualPath(individual.id), patch);
    },
  });
  return values && updated ? updated.id : null;
}

async function mergeInto(individual) {
  let moved = null;
  const values = await formDialog({
    title: `Merge another individual into ${individual.id}`,
    message: `They are one animal: the other's photos move to ${individual.id}, and the other is deleted. This cannot be undone.`,
    fields: [{ name: "source", label: "The other individual's id", required: true, suggest: (text) => suggestIds(text, individual.id) }],
    confirm: "Merge",
    danger: true,
    onSubmit: async ({ source }) => {
      moved = await api.sendJson("POST", `${individualPath(individual.id)}/merge`, { source });
    },
  });
  if (!values) return false;
  notify(`${values.source} merged into ${individual.id}: ${moved.moved_images} photo(s) moved.`);
  return true;
}

async function remove(individual, photos) {
  const confirmed = await confirmDialog({
    title: `Delete ${individual.id}?`,
    message: `${individual.id} and its ${photos} photo${photos === 1 ? "" : "s"} (their files too) leave the catalogue. This cannot be undone.`,
    confirm: "Delete",
    danger: true,
    onSubmit: () => api.send("DELETE", individualPath(individual.id)),
  });
  if (!confirmed) return;
  notify(`${individual.id} deleted.`);
  location.hash = "#/individuals";
}
