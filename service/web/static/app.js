// The page: views chosen by the URL's fragment (#/review, #/individuals,
// #/individual/ID, #/status), and the keys. The review view is built once and kept, so
// a batch under review survives a look at the catalogue.

import { individualsKey, showIndividual, showIndividuals } from "./catalogue.js";
import { typing } from "./dom.js";
import { mountReview, reviewKey } from "./review.js";
import { readiness, showStatus } from "./status.js";

const OPENING_POLL_MS = 3000;
const review = document.getElementById("review");
const page = document.getElementById("page");
let shown = 0; // which navigation the page shows, so a slow load never paints over a newer one
let active = "review";

function route() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/");
  const ticket = ++shown;
  const isCurrent = () => ticket === shown;
  active = name || "review";
  review.hidden = active !== "review";
  page.hidden = active === "review";
  for (const link of document.querySelectorAll("nav a")) {
    const here = link.dataset.view === active || (link.dataset.view === "individuals" && active === "individual");
    link.classList.toggle("active", here);
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.view = active;
  if (active === "individuals") showIndividuals(page, new URLSearchParams(query), isCurrent);
  else if (active === "individual") showIndividual(page, decodeURIComponent(rest.join("/")), isCurrent);
  else if (active === "status") showStatus(page, isCurrent);
  else if (active !== "review") location.replace("#/review");
}

document.addEventListener("keydown", (event) => {
  if (typing(event)) return;
  // Enter and Space on a focused control are that control's.
  if ((event.key === "Enter" || event.key === " ") && event.target.closest?.("button, a, summary")) return;
  const handled = active === "review" ? reviewKey(event) : active === "individuals" && individualsKey(event);
  if (handled) event.preventDefault();
});

// While the catalogue opens, say so (the page itself loads at once).
async function watchOpening() {
  const note = document.getElementById("opening");
  try {
    const { ready, body } = await readiness();
    note.hidden = ready;
    note.textContent = ready ? "" : `catalogue ${body.status}: ${body.detail}`;
    if (ready || body.status === "failed") return;
  } catch {
    note.hidden = false;
    note.textContent = "the service cannot be reached";
  }
  setTimeout(watchOpening, OPENING_POLL_MS);
}

mountReview(review);
window.addEventListener("hashchange", route);
route();
watchOpening();
