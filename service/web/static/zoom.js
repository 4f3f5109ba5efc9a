// A photo in a frame that the wheel zooms and a drag pans, keeping the point under the
// cursor where it is. Everything is placed in the photo's own pixels (orientation
// applied), whatever resolution is on screen: a thumbnail first, the original file once
// the zoom goes past what the thumbnail holds.

import { photoUrl } from "./api.js";
import { h, svg } from "./dom.js";

const WHEEL_STEP = 0.0015; // zoom factor per wheel delta unit: exp(-delta * step)
const MAX_ZOOM = 16; // times the photo's own pixels
const SHARPEN_AT = 1.25; // screen pixels per thumbnail pixel before the original is loaded

export class ZoomView {
  /**
   * @param {HTMLElement} frame the element to fill; its size is the view's.
   * @param {() => void} onChange called after every zoom, pan or new photo.
   */
  constructor(frame, onChange) {
    this.frame = frame;
    this.onChange = onChange;
    this.img = h("img", { alt: "", draggable: "false" });
    this.marks = svg("svg", { class: "marks" });
    this.layer = h("div", { class: "layer" }, this.img, this.marks);
    this.message = h("p", { class: "frame-message" });
    frame.append(this.layer, this.message);
    this.width = 0;
    this.height = 0;
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.shown = 0; // which show() call the frame holds, so a late load never wins
    frame.addEventListener("wheel", (e) => this.#wheel(e), { passive: false });
    frame.addEventListener("pointerdown", (e) => this.#drag(e));
    frame.addEventListener("dblclick", () => this.fit());
    new ResizeObserver(() => this.fit()).observe(frame);
  }

  /**
   * Show a photo.
   * @param {{src: string, full?: string, width?: number, height?: number, boxes?: number[][]}} photo
   *   src: what to show first; full: the original, loaded when zoomed in; width, height:
   *   the photo's pixels (taken from the image itself when not given); boxes:
   *   [x0, y0, x1, y1] rectangles to draw, in the photo's pixels.
   */
  show({ src, full = null, width = 0, height = 0, boxes = [] }) {
    const ticket = ++this.shown;
    this.full = full;
    this.sharpened = false;
    this.boxes = boxes;
    this.message.textContent = "";
    this.frame.classList.remove("empty");
    this.layer.hidden = false;
    this.img.onload = () => {
      if (ticket !== this.shown || this.width) return;
      this.#size(this.img.naturalWidth, this.img.naturalHeight);
    };
    this.img.onerror = () => {
      if (ticket === this.shown) this.clear("this browser cannot show the photo (its format, or it is unreadable)");
    };
    this.width = 0;
    if (width && height) this.#size(width, height);
    else this.layer.hidden = true; // until the image says how large it is
    this.img.src = src;
    return ticket;
  }

  /** Show nothing but a message. */
  clear(message = "") {
    ++this.shown;
    this.width = 0;
    this.layer.hidden = true;
    this.img.removeAttribute("src");
    this.message.textContent = message;
    this.frame.classList.add("empty");
    this.onChange();
  }

  #size(width, height) {
    this.width = width;
    this.height = height;
    this.layer.hidden = false;
    this.img.style.width = `${width}px`;
    this.img.style.height = `${height}px`;
    this.marks.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.marks.setAttribute("width", width);
    this.marks.setAttribute("height", height);
    this.marks.replaceChildren(...this.boxes.map(([x0, y0, x1, y1]) =>
      svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "box" })));
    this.fit();
  }

  /** Fit the whole photo in the frame, centred. */
  fit() {
    if (!this.width) return;
    const { clientWidth: fw, clientHeight: fh } = this.frame;
    this.scale = Math.min(fw / this.width, fh / this.height) || 1;
    this.x = (fw - this.width * this.scale) / 2;
    this.y = (fh - this.height * this.scale) / 2;
    this.#apply();
  }

  /** Zoom by `factor` about a point of the frame (frame pixels), which stays put. */
  zoomAt(fx, fy, factor) {
    if (!this.width) return;
    const fitted = Math.min(this.frame.clientWidth / this.width, this.frame.clientHeight / this.height);
    const scale = Math.min(Math.max(this.scale * factor, fitted / 2), MAX_ZOOM);
    // The photo point under (fx, fy) is ((fx - x) / scale); keep it under (fx, fy).
    this.x = fx - ((fx - this.x) * scale) / this.scale;
    this.y = fy - ((fy - this.y) * scale) / this.scale;
    this.scale = scale;
    this.#apply();
  }

  /** Where a photo point is on screen (client pixels), or null when no photo is shown. */
  toClient(px, py) {
    if (!this.width) return null;
    const rect = this.frame.getBoundingClientRect();
    return { x: rect.left + this.x + px * this.scale, y: rect.top + this.y + py * this.scale };
  }

  /** Whether a client point lies inside the frame. */
  contains({ x, y }) {
    const rect = this.frame.getBoundingClientRect();
    return x >= rect.left && x <= rect.right && y >= rect.top && y <= rect.bottom;
  }

  #apply() {
    this.layer.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.marks.style.setProperty("--stroke", `${2 / this.scale}px`);
    this.#sharpen();
    this.onChange();
  }

  // Past the thumbnail's resolution, load the original and swap it in once decoded.
  async #sharpen() {
    const shown = this.img.naturalWidth;
    if (!this.full || this.sharpened || !shown || this.scale * this.width < shown * SHARPEN_AT) return;
    this.sharpened = true;
    const ticket = this.shown;
    const original = new Image();
    original.src = await photoUrl(this.full).catch(() => "");
    try {
      await original.decode();
    } catch {
      return; // the browser cannot show the original (e.g. HEIC): the thumbnail stays
    }
    if (ticket === this.shown) this.img.src = original.src;
  }

  #wheel(event) {
    event.preventDefault();
    const rect = this.frame.getBoundingClientRect();
    // Lines and pages (Firefox, some mice) are scaled to pixels.
    const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? rect.height : 1;
    this.zoomAt(event.clientX - rect.left, event.clientY - rect.top, Math.exp(-event.deltaY * unit * WHEEL_STEP));
  }

  #drag(event) {
    if (event.button !== 0 || !this.width) return;
    event.preventDefault();
    this.frame.setPointerCapture(event.pointerId);
    this.frame.classList.add("dragging");
    let { clientX: lastX, clientY: lastY } = event;
    const move = (e) => {
      this.x += e.clientX - lastX;
      this.y += e.clientY - lastY;
      lastX = e.clientX;
      lastY = e.clientY;
      this.#apply();
    };
    const end = () => {
      this.frame.removeEventListener("pointermove", move);
      this.frame.classList.remove("dragging");
    };
    this.frame.addEventListener("pointermove", move);
    this.frame.addEventListener("pointerup", end, { once: true });
    this.frame.addEventListener("pointercancel", end, { once: true });
  }
}
