// Identify and review. Photos (or ZIPs) go to the service as batches whose answers stream
// in; each photo opens beside its candidates, and one key records a verdict through the
// API (POST /v1/review), which applies its own rules. Verdicts are sent in order in the
// background, so the next photo opens at once; one that fails comes back with the
// service's reason.

import * as api from "./api.js";
import { Compare } from "./compare.js";
import { formDialog } from "./dialogs.js";
import { button, formatDate, h, individualLink, individualPath, percent } from "./dom.js";
import { notify } from "./notices.js";
import { zipEntries } from "./zip.js";

const TOP_K = 5;
const PHOTOS_PER_REQUEST = 50; // a large selection is sent in several batches
const QUERY_URLS_KEPT = 20; // decoded ZIP photos held in memory for quick reopening
const CARD_SIZE = 128;
const VIEW_SIZE = 1024;
const BROWSER_FORMATS = new Set(["JPEG", "PNG", "WEBP", "GIF", "BMP"]);

// Why a photo was rejected, in words.
const REASONS = {
  not_a_marine_mammal: "No whale or dolphin was found in this photo.",
  low_confidence: "Too blurred or too little texture to match: the photo is blank, blurred or very small.",
  corrupted_image: "The file cannot be read: it is damaged or not a photo.",
  unsupported_format: "This kind of file is not supported.",
  too_large: "The photo is too large.",
};

const state = {
  items: [],
  index: -1, // the open photo; -1: none
  expected: 0, // answers announced so far
  uncounted: 0, // ZIPs whose number of photos is not known yet
  answered: 0,
  batches: Promise.resolve(), // batches are sent one after another
  writes: Promise.resolve(), // verdicts, merges and undos apply in the order given
  undo: [],
};
const recentUrls = [];
let view = null;
let compare = null;

// ------------------------------------------------------------------ the page

/** Build the review view into `section` (once; it keeps its state across views). */
export function mountReview(section) {
  const picker = h("input", {
    type: "file",
    multiple: true,
    hidden: true,
    accept: "image/*,.heic,.heif,.zip,application/zip",
    "data-role": "pick-photos",
    onchange: () => {
      add([...picker.files]);
      picker.value = "";
    },
  });
  view = {
    section,
    species: h("input", { id: "survey-species", placeholder: "e.g. humpback_whale", autocomplete: "off" }),
    progress: h("span", { class: "progress", role: "status" }),
    queue: h("ol", { class: "queue", "aria-label": "photos" }),
    title: h("h2", { class: "photo-name" }),
    decision: h("p", { class: "decision" }),
    banner: h("div", { class: "banner", hidden: true }),
    candidates: h("ol", { class: "candidates" }),
    compare: h("div"),
    empty: h("div", { class: "empty-state" }),
    buttons: {},
  };
  const b = view.buttons;
  b.primary = button("", primary, { class: "primary", "data-action": "primary" });
  b.confirm = button("Confirm (c)", confirmSelected, { "data-action": "confirm" });
  b.noMatch = button("No match… (n)", noMatch, { "data-action": "no-match" });
  b.merge = button("Merge… (m)", merge, { "data-action": "merge" });
  b.skip = button("Skip (s)", skip, { "data-action": "skip" });
  b.undo = button("Undo (u)", undo, { "data-action": "undo" });
  b.pairs = button("Pairs: on (p)", togglePairs, { "data-action": "pairs", "aria-pressed": "true" });
  b.previous = button("←", () => step(-1), { "data-action": "previous", title: "previous photo (←)", "aria-label": "previous photo" });
  b.next = button("→", () => step(1), { "data-action": "next", title: "next photo (→)", "aria-label": "next photo" });

  const toolbar = h("div", { class: "toolbar" },
    button("Add photos or a ZIP…", () => picker.click(), { class: "primary", "data-action": "add" }),
    picker,
    h("label", { for: "survey-species" }, "Species of new individuals "),
    view.species,
    view.progress);
  const photo = h("div", { class: "photo" },
    h("header", {}, view.title, view.decision),
    view.banner,
    view.compare,
    view.candidates,
    h("div", { class: "actions" }, b.primary, b.confirm, b.noMatch, b.merge, b.skip, b.undo, b.pairs,
      h("span", { class: "spacer" }), b.previous, b.next));
  section.append(toolbar, h("div", { class: "review" }, h("aside", {}, view.queue), view.empty, photo));
  view.photo = photo;
  compare = new Compare(view.compare);

  section.addEventListener("dragover", (event) => event.preventDefault());
  section.addEventListener("drop", (event) => {
    event.preventDefault();
    add([...event.dataTransfer.files]);
  });
  renderProgress();
  render();
}

/** The review view's keys; returns whether the key was one. */
export function reviewKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return false;
  const keys = {
    Enter: primary,
    c: confirmSelected,
    n: noMatch,
    m: merge,
    s: skip,
    u: undo,
    p: togglePairs,
    ArrowRight: () => step(1),
    ArrowLeft: () => step(-1),
  };
  if (/^[1-9]$/.test(event.key)) {
    select(Number(event.key) - 1, true);
    return true;
  }
  const action = keys[event.key];
  if (!action) return false;
  action();
  return true;
}

// ------------------------------------------------------------------ sending photos

function isZip(file) {
  return file.type === "application/zip" || file.type === "application/x-zip-compressed"
    || file.name.toLowerCase().endsWith(".zip");
}

async function add(files) {
  const photos = files.filter((f) => !isZip(f));
  for (let start = 0; start < photos.length; start += PHOTOS_PER_REQUEST) {
    const chunk = photos.slice(start, start + PHOTOS_PER_REQUEST);
    const form = new FormData();
    chunk.forEach((file) => form.append("files", file, file.name));
    const items = chunk.map((file) => newItem(file.name, () => Promise.resolve(file)));
    state.expected += items.length;
    send(form, items, true);
  }
  for (const zip of files.filter(isZip)) {
    // Read here too: a verdict sends the photo itself, and the page shows it.
    const entries = await zipEntries(zip).catch(() => null);
    const items = (entries ?? []).map((entry) => newItem(entry.path, entry.read));
    if (entries) state.expected += items.length;
    else state.uncounted += 1;
    const form = new FormData();
    form.append("archive", zip, zip.name);
    send(form, items, entries !== null);
  }
  renderProgress();
}

// Batches go one at a time, in the order given; their answers fill the items in order.
function send(form, items, counted) {
  state.batches = state.batches.then(async () => {
    let next = 0;
    const settle = (total) => {
      if (!counted) state.uncounted -= 1;
      // The service's count wins: it knows which entries it reads.
      state.expected += total - (counted ? items.length : 0);
      counted = true;
      renderProgress();
    };
    try {
      await api.identifyBatch(form, TOP_K, {
        onTotal: settle,
        onAnswer(line) {
          if (!line.decision) throw new api.ApiError(line.status_code, line.error, line.detail);
          // An entry this browser could not list is still answered, without its photo.
          const item = items[next] ?? newItem(line.image, null);
          if (next >= items.length) items.push(item);
          next += 1;
          answered(item, line);
        },
      });
      if (!counted) settle(next);
      lose(items.slice(next), "the service sent no answer for this photo");
    } catch (error) {
      if (!counted) settle(next);
      lose(items.slice(next), error.message);
      notify(`Some photos got no answer: ${error.message}`, { kind: "error" });
    }
  });
}

function answered(item, answer) {
  item.answer = answer;
  item.status = "ready";
  item.selected = 0;
  // Enter accepts what the service proposes: the best candidate only when it says "match".
  item.chosen = answer.decision === "match";
  state.answered += 1;
  updateItem(item);
  renderProgress();
  if (state.index < 0) open(item);
  else if (item === current()) render();
}

function lose(items, reason) {
  for (const item of items) {
    state.expected -= 1;
    item.status = "failed";
    item.error = `no answer: ${reason}`;
    updateItem(item);
    if (item === current()) render();
  }
  renderProgress();
}

// ------------------------------------------------------------------ the queue

function newItem(name, read) {
  const item = {
    name,
    read, // () => Promise<Blob>; null when the browser could not read the photo
    answer: null,
    status: "waiting", // waiting, ready, confirmed, new, skipped, failed
    selected: 0,
    chosen: false,
    result: null,
    error: null,
    moveTo: null, // a verdict refused because the photo is stored elsewhere
    url: null,
  };
  item.li = h("li", { onclick: () => open(item) },
    h("span", { class: "name" }, name), h("span", { class: "mark" }));
  state.items.push(item);
  view.queue.append(item.li);
  updateItem(item);
  return item;
}

function markOf(item) {
  const best = item.answer?.candidates?.[0];
  switch (item.status) {
    case "waiting": return "…";
    case "ready":
      if (item.answer.decision === "rejected") return "rejected";
      if (item.answer.decision === "match") return `${best.individual_id} ${percent(best.probability)}`;
      return "new?";
    case "confirmed": return `✓ ${item.verdict.individual_id}`;
    case "new": return `+ ${item.result?.individual_id ?? item.verdict.individual_id ?? "new"}`;
    case "skipped": return "skipped";
    default: return "not saved";
  }
}

function updateItem(item) {
  item.li.dataset.status = item.status;
  item.li.dataset.decision = item.answer?.decision ?? "";
  item.li.dataset.saved = String(item.result !== null);
  item.li.querySelector(".mark").textContent = markOf(item);
}

function current() {
  return state.items[state.index] ?? null;
}

function open(item) {
  current()?.li.classList.remove("current");
  state.index = state.items.indexOf(item);
  item.li.classList.add("current");
  item.li.scrollIntoView({ block: "nearest" });
  render();
  prefetch(nextReady());
}

function step(delta) {
  const index = Math.min(Math.max(state.index + delta, 0), state.items.length - 1);
  if (state.items[index]) open(state.items[index]);
}

function nextReady() {
  const count = state.items.length;
  for (let k = 1; k <= count; k++) {
    const item = state.items[(state.index + k) % count];
    if (item.status === "ready") return item;
  }
  return null;
}

// After a verdict: the next photo to review, else the next still waiting for its answer.
function openNext() {
  const next = nextReady() ?? state.items.slice(state.index + 1).find((i) => i.status === "waiting")
    ?? state.items.find((i) => i.status === "waiting");
  if (next) {
    open(next);
    return;
  }
  current()?.li.classList.remove("current");
  state.index = -1;
  render();
}

function renderProgress() {
  const reviewed = state.items.filter((i) => ["confirmed", "new", "skipped"].includes(i.status)).length;
  const total = state.uncounted ? `at least ${state.expected}` : `${state.expected}`;
  view.progress.textContent = state.items.length || state.uncounted
    ? `done ${state.answered} of ${total} · reviewed ${reviewed}`
    : "";
  view.progress.dataset.done = state.answered;
  view.progress.dataset.total = state.uncounted ? "" : state.expected;
  view.progress.dataset.complete = String(!state.uncounted && state.answered === state.expected);
}

// ------------------------------------------------------------------ one photo

function candidates(item) {
  return item?.answer?.candidates ?? [];
}

function selected(item) {
  return candidates(item)[item.selected] ?? null;
}

function reviewable(item) {
  return item && item.answer && item.answer.decision !== "rejected" && item.read !== null
    && item.status !== "waiting";
}

function render() {
  const item = current();
  view.section.dataset.current = item ? String(state.index) : "";
  view.photo.hidden = !item;
  view.empty.hidden = Boolean(item);
  if (!item) {
    renderEmpty();
    return;
  }
  view.section.dataset.status = item.status;
  view.title.textContent = item.name;
  view.decision.replaceChildren(...decisionText(item));
  renderBanner(item);
  view.candidates.replaceChildren(...candidates(item).map((c, i) => candidateCard(item, c, i)));
  renderButtons(item);
  showQuery(item);
  showCandidate(item);
}

function renderEmpty() {
  const counts = {};
  for (const item of state.items) counts[item.status] = (counts[item.status] ?? 0) + 1;
  const summary = state.items.length
    ? h("p", { class: "summary" }, `All ${state.items.length} photos are reviewed: ${counts.confirmed ?? 0} confirmed,`
      + ` ${counts.new ?? 0} new individuals, ${counts.skipped ?? 0} skipped, ${counts.failed ?? 0} not saved.`)
    : h("p", {}, "Add photos or a ZIP of a survey (or drop them here): each is identified, and opens beside its best candidates.");
  view.empty.replaceChildren(summary, h("dl", { class: "keys" },
    [["Enter", "accept: confirm the chosen candidate, or name a new individual"],
      ["1-5", "choose a candidate"], ["c", "confirm the chosen candidate"], ["n", "no match: a new individual"],
      ["m", "merge two candidates"], ["s", "skip"], ["u", "undo"], ["p", "matched points on/off"],
      ["← →", "previous / next photo"]].flatMap(([key, what]) => [h("dt", {}, h("kbd", {}, key)), h("dd", {}, what)])));
}

function decisionText(item) {
  const answer = item.answer;
  if (!answer) {
    return [item.status === "failed" ? item.error : "Waiting for the service's answer…"];
  }
  if (answer.decision === "rejected") {
    return [h("strong", { class: "rejected" }, REASONS[answer.rejection_reason] ?? "This photo cannot be used."),
      answer.detail ? h("span", { class: "detail" }, ` (${answer.detail})`) : null];
  }
  const best = answer.candidates[0];
  const proposal = answer.decision === "match"
    ? h("strong", { class: "match" }, `Match: ${best.individual_id} (${percent(best.probability)})`)
    : h("strong", { class: "new" }, best
      ? `Probably a new individual (best candidate ${best.individual_id}, ${percent(best.probability)})`
      : "A new individual: the catalogue has no candidate");
  return [proposal, h("span", { class: "saved" }, savedText(item))];
}

function savedText(item) {
  const id = item.result?.individual_id ?? item.verdict?.individual_id;
  const pending = item.result ? "" : " (saving…)";
  switch (item.status) {
    case "confirmed": return ` · confirmed as ${id}${pending}`;
    case "new": return ` · new individual ${id ?? ""}${pending}`;
    case "skipped": return " · skipped";
    default: return "";
  }
}

function renderBanner(item) {
  view.banner.hidden = item.status !== "failed" || !item.answer;
  if (view.banner.hidden) return;
  view.banner.replaceChildren(h("span", {}, `Not saved: ${item.error}`),
    item.moveTo ? button(`Move the photo to ${item.moveTo.individual_id ?? "the new individual"} (Enter)`, primary, { "data-action": "move" }) : null);
}

function primaryLabel(item) {
  if (item.moveTo) return "Move it (Enter)";
  if (!reviewable(item)) return "Next (Enter)";
  if (item.chosen && selected(item)) return `Confirm ${selected(item).individual_id} (Enter)`;
  return "New individual… (Enter)";
}

function renderButtons(item) {
  const b = view.buttons;
  const usable = reviewable(item);
  b.primary.textContent = primaryLabel(item);
  b.primary.disabled = item.status === "waiting";
  b.confirm.disabled = !usable || !selected(item);
  b.noMatch.disabled = !usable;
  b.merge.disabled = new Set(candidates(item).map((c) => c.individual_id)).size < 2;
  b.skip.disabled = item.status === "waiting";
  b.undo.disabled = state.undo.length === 0;
  b.previous.disabled = state.index <= 0;
  b.next.disabled = state.index >= state.items.length - 1;
}

function candidateCard(item, candidate, index) {
  const imageId = candidate.evidence.image_id;
  const img = h("img", { alt: "", width: 80, height: 64 });
  const file = h("span", { class: "file" }, imageId === null ? "deep-model centroid (no photo)" : "");
  const date = h("span", { class: "date" });
  if (imageId !== null) {
    api.showPhoto(img, api.thumbnailPath(imageId, CARD_SIZE));
    api.imageRecord(imageId).then((record) => {
      file.textContent = record.source_name;
      date.textContent = record.taken_at ? formatDate(record.taken_at) : `enrolled ${formatDate(record.created_at)}`;
    }, () => { file.textContent = "(this photo is no longer in the catalogue)"; });
  }
  return h("li", {
    class: `candidate${index === item.selected ? " selected" : ""}${index === item.selected && item.chosen ? " chosen" : ""}`,
    "data-id": candidate.individual_id,
    onclick: () => select(index, true),
  },
  img,
  h("div", { class: "about" },
    h("span", { class: "rank" }, `${index + 1}`),
    h("a", { href: individualLink(candidate.individual_id), class: "id", onclick: (e) => e.stopPropagation() },
      candidate.individual_id),
    h("span", { class: "probability" }, percent(candidate.probability)),
    h("span", { class: "species" }, candidate.species ?? "species unknown"),
    file,
    date));
}

function select(index, chosen) {
  const item = current();
  if (!item || !candidates(item)[index]) return;
  item.selected = index;
  item.chosen = chosen;
  [...view.candidates.children].forEach((card, i) => {
    card.classList.toggle("selected", i === index);
    card.classList.toggle("chosen", i === index && chosen);
  });
  renderButtons(item);
  showCandidate(item);
}

// The query photo: the file itself, or the ZIP entry read in this browser.
async function queryUrl(item) {
  if (!item.url) {
    const blob = await item.read();
    item.url = URL.createObjectURL(blob);
    recentUrls.push(item);
    while (recentUrls.length > QUERY_URLS_KEPT) {
      const old = recentUrls.shift();
      if (old !== current()) {
        URL.revokeObjectURL(old.url);
        old.url = null;
      }
    }
  }
  return item.url;
}

async function showQuery(item) {
  if (!item.read) {
    compare.query.clear("this browser could not read the photo from its archive");
    compare.leftCaption.textContent = item.name;
    return;
  }
  let url;
  try {
    url = await queryUrl(item);
  } catch (error) {
    if (item === current()) compare.query.clear(`this browser could not read the photo: ${error.message}`);
    return;
  }
  if (item !== current()) return;
  // Every animal the locator found; the answer's own box (the one reviewed) first.
  const box = item.answer?.bbox;
  const others = (item.answer?.detections ?? []).map((d) => d.bbox).filter((b) => b.join() !== box?.join());
  compare.query.show({ src: url, boxes: box ? [box, ...others] : others });
  compare.leftCaption.textContent = `query: ${item.name}`;
}

async function showCandidate(item) {
  const candidate = selected(item);
  compare.setPairs([]);
  compare.rightCaption.textContent = "";
  view.compare.dataset.candidate = candidate?.individual_id ?? "";
  if (!candidate) {
    compare.candidate.clear(item.answer && item.answer.decision !== "rejected" ? "no candidate in the catalogue" : "");
    return;
  }
  const imageId = candidate.evidence.image_id;
  if (imageId === null) {
    compare.candidate.clear("found by the deep model's summary of this individual: no single photo to show");
    return;
  }
  let record;
  try {
    record = await api.imageRecord(imageId);
  } catch (error) {
    if (item === current() && selected(item) === candidate) compare.candidate.clear(error.message);
    return;
  }
  if (item !== current() || selected(item) !== candidate) return;
  compare.candidate.show({
    src: await api.photoUrl(api.thumbnailPath(imageId, VIEW_SIZE)),
    full: BROWSER_FORMATS.has(record.format) ? api.filePath(imageId) : null,
    width: record.width,
    height: record.height,
  });
  compare.setPairs(candidate.evidence.pairs);
  const date = record.taken_at ? `, ${formatDate(record.taken_at)}` : "";
  compare.rightCaption.textContent = `${candidate.individual_id}: ${record.source_name}${date}`;
}

// What the next photo will need, fetched while this one is looked at.
function prefetch(item) {
  const imageId = item ? selected(item)?.evidence.image_id : null;
  if (imageId === null || imageId === undefined) return;
  api.imageRecord(imageId).catch(() => {});
  api.photoUrl(api.thumbnailPath(imageId, VIEW_SIZE)).then((url) => { new Image().src = url; }, () => {});
  if (item.read) queryUrl(item).catch(() => {});
}

// ------------------------------------------------------------------ verdicts

function enqueue(work) {
  const done = state.writes.then(work);
  state.writes = done.catch(() => {});
  return done;
}

function primary() {
  const item = current();
  if (!item || item.status === "waiting") return;
  if (item.moveTo) decide(item, { ...item.moveTo, move: true });
  else if (!reviewable(item)) skip();
  else if (item.chosen && selected(item)) confirmSelected();
  else noMatch();
}

function confirmSelected() {
  const item = current();
  const candidate = reviewable(item) ? selected(item) : null;
  if (candidate) decide(item, { verdict: "confirm", individual_id: candidate.individual_id, species: null });
}

// The id the service itself would make up for this photo: the date and its hash.
async function suggestedId(item) {
  const day = new Date().toISOString().slice(0, 10).replaceAll("-", "");
  let hex;
  if (crypto.subtle) {
    const digest = await crypto.subtle.digest("SHA-256", await (await item.read()).arrayBuffer());
    hex = [...new Uint8Array(digest).slice(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
  } else { // no hashing outside a secure context (plain http to another machine)
    hex = [...crypto.getRandomValues(new Uint8Array(4))].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  return `new-${day}-${hex}`;
}

async function noMatch() {
  const item = current();
  if (!reviewable(item)) return;
  const values = await formDialog({
    title: "No match: a new individual",
    message: `${item.name} shows none of the known individuals; it starts a new one.`,
    fields: [
      { name: "id", label: "New individual's id", value: await suggestedId(item), required: true },
      { name: "species", label: "Species", value: view.species.value.trim() || (candidates(item)[0]?.species ?? "") },
    ],
    confirm: "Create",
  });
  if (values) decide(item, { verdict: "no_match", individual_id: values.id || null, species: values.species || null });
}

function reviewForm(blob, item, verdict) {
  const form = new FormData();
  form.append("file", blob, item.name.split("/").at(-1));
  form.append("verdict", verdict.verdict);
  if (verdict.individual_id) form.append("individual_id", verdict.individual_id);
  if (verdict.species) form.append("species", verdict.species);
  if (verdict.move) form.append("move", "true");
  return form;
}

function decide(item, verdict) {
  item.status = verdict.verdict === "confirm" ? "confirmed" : "new";
  Object.assign(item, { verdict, error: null, moveTo: null, result: null });
  const action = { item, verdict, result: null };
  action.done = enqueue(async () => api.postForm("/v1/review", reviewForm(await item.read(), item, verdict)))
    .then((result) => {
      action.result = result;
      item.result = result;
      updateItem(item);
      if (item === current()) render();
      return result;
    }, (error) => {
      failed(item, verdict, error);
      throw error;
    });
  action.done.catch(() => {}); // reported by `failed`
  state.undo.push(action);
  updateItem(item);
  renderProgress();
  openNext();
}

async function failed(item, verdict, error) {
  item.status = "failed";
  item.error = error.message;
  // 409: the photo is stored under another individual (it may be moved) or, for a new
  // individual, the id is taken (a move would not help).
  if (error.status === 409 && !verdict.move) {
    const taken = verdict.verdict === "no_match" && verdict.individual_id
      && await api.getJson(individualPath(verdict.individual_id)).then(() => true, () => false);
    if (!taken) item.moveTo = verdict;
  }
  updateItem(item);
  renderProgress();
  if (item === current()) render();
  notify(`${item.name} was not saved: ${error.message}`, {
    kind: "error",
    actions: item === current() ? [] : [{ label: "Open it", run: () => open(item) }],
  });
}

function skip() {
  const item = current();
  if (!item) return;
  if (item.status === "ready") {
    item.status = "skipped";
    state.undo.push({ item, skip: true });
    updateItem(item);
    renderProgress();
  }
  openNext();
}

async function undo() {
  const action = state.undo.pop();
  if (!action) {
    notify("Nothing to undo.");
    return;
  }
  const { item } = action;
  const reopen = (message) => {
    item.status = "ready";
    Object.assign(item, { result: null, error: null, moveTo: null });
    updateItem(item);
    renderProgress();
    open(item);
    notify(message);
  };
  if (action.skip) {
    reopen(`Undone: ${item.name} is no longer skipped.`);
    return;
  }
  let result;
  try {
    result = await action.done;
  } catch {
    reopen(`Nothing had been saved for ${item.name}; it is open again.`);
    return;
  }
  if (action.verdict.move) {
    notify(`Undo is not available for ${item.name}: it was moved from another individual.`, { kind: "error" });
    return;
  }
  try {
    await enqueue(async () => {
      if (result.created_image) await api.send("DELETE", `/v1/images/${result.image_id}`);
      if (result.created_individual) await deleteIfEmpty(result.individual_id);
    });
  } catch (error) {
    state.undo.push(action);
    notify(`Undo failed: ${error.message}`, { kind: "error" });
    return;
  }
  reopen(result.created_individual
    ? `Undone: new individual ${result.individual_id} removed.`
    : `Undone: ${item.name} is no longer a photo of ${result.individual_id}.`);
}

// A new individual goes with its photo, unless it has others since (a later confirm or
// merge): then only the photo goes.
async function deleteIfEmpty(individualId) {
  let detail;
  try {
    detail = await api.getJson(individualPath(individualId));
  } catch (error) {
    if (error.status === 404) return; // merged into another since
    throw error;
  }
  if (detail.images.length === 0) await api.send("DELETE", individualPath(individualId));
}

async function merge() {
  const item = current();
  const ids = [...new Set(candidates(item).map((c) => c.individual_id))];
  if (ids.length < 2) {
    notify("Merging needs two candidates.");
    return;
  }
  const keep = selected(item)?.individual_id ?? ids[0];
  const values = await formDialog({
    title: "Merge two candidates",
    message: "They are one animal: the second's photos move to the first, and the second is deleted.",
    fields: [
      { name: "target", label: "Keep", type: "select", options: ids, value: keep },
      { name: "source", label: "Merge into it, then delete", type: "select", options: ids, value: ids.find((id) => id !== keep) },
    ],
    confirm: "Merge",
    onSubmit: async ({ target, source }) => {
      if (target === source) throw new Error("Choose two different individuals.");
      await enqueue(() => api.sendJson("POST", `${individualPath(target)}/merge`, { source }));
    },
  });
  if (!values) return;
  relabel(values.source, values.target);
  render();
  notify(`Merged ${values.source} into ${values.target}.`);
}

// After a merge every answer that names the merged individual names the one kept.
function relabel(source, target) {
  for (const item of state.items) {
    if (!item.answer) continue;
    const seen = new Set();
    item.answer.candidates = item.answer.candidates
      .map((c) => (c.individual_id === source ? { ...c, individual_id: target } : c))
      .filter((c) => !seen.has(c.individual_id) && seen.add(c.individual_id));
    item.selected = Math.min(item.selected, Math.max(item.answer.candidates.length - 1, 0));
    updateItem(item);
  }
}

function togglePairs() {
  const shown = compare.togglePairs();
  view.buttons.pairs.textContent = `Pairs: ${shown ? "on" : "off"} (p)`;
  view.buttons.pairs.setAttribute("aria-pressed", String(shown));
}
