// The query photo beside a candidate's photo, each zoomed and panned on its own, with the
// matched point pairs drawn as lines from one to the other.

import { h, svg } from "./dom.js";
import { ZoomView } from "./zoom.js";

export class Compare {
  /** @param {HTMLElement} host an empty element; the two frames fill it side by side. */
  constructor(host) {
    const left = h("div", { class: "frame", "data-side": "query" });
    const right = h("div", { class: "frame", "data-side": "candidate" });
    this.leftCaption = h("p", { class: "caption" });
    this.rightCaption = h("p", { class: "caption" });
    this.overlay = svg("svg", { class: "pairs", "aria-hidden": "true" });
    host.classList.add("compare");
    host.append(
      h("figure", {}, left, this.leftCaption),
      h("figure", {}, right, this.rightCaption),
      this.overlay,
    );
    this.host = host;
    this.pairs = [];
    this.visible = true;
    this.queued = false;
    const redraw = () => this.redraw();
    this.query = new ZoomView(left, redraw);
    this.candidate = new ZoomView(right, redraw);
  }

  /** Draw the matched pairs [query x, y, candidate x, y] (each photo's pixels). */
  setPairs(pairs) {
    this.pairs = pairs ?? [];
    this.redraw();
  }

  /** Show or hide the pairs; returns whether they are shown now. */
  togglePairs() {
    this.visible = !this.visible;
    this.host.classList.toggle("pairs-hidden", !this.visible);
    this.redraw();
    return this.visible;
  }

  /** Redraw the lines on the next frame (zooming asks many times a frame). */
  redraw() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      this.#draw();
    });
  }

  #draw() {
    const origin = this.host.getBoundingClientRect();
    const lines = [];
    if (this.visible) {
      for (const [qx, qy, cx, cy] of this.pairs) {
        const a = this.query.toClient(qx, qy);
        const b = this.candidate.toClient(cx, cy);
        // A point zoomed out of its frame has no place to be drawn from.
        if (!a || !b || !this.query.contains(a) || !this.candidate.contains(b)) continue;
        const x1 = a.x - origin.left;
        const y1 = a.y - origin.top;
        const x2 = b.x - origin.left;
        const y2 = b.y - origin.top;
        lines.push(svg("line", { x1, y1, x2, y2 }),
          svg("circle", { cx: x1, cy: y1, r: 3 }), svg("circle", { cx: x2, cy: y2, r: 3 }));
      }
    }
    this.overlay.replaceChildren(...lines);
    this.overlay.dataset.drawn = String(lines.length / 3);
  }
}
