// Where an individual was seen, as a small inline SVG: positions on an equirectangular
// grid (longitudes shrunk by the cosine of the latitude, so distances look right at the
// scale of a survey), joined in date order. No map tiles: it works offline.

import { degrees, formatDate, svg } from "./dom.js";

const WIDTH = 320;
const HEIGHT = 220;
const MARGIN = 28;
const MIN_SPAN = 0.01; // degrees: a single spot still gets a readable frame

/**
 * @param {{latitude: number, longitude: number, taken_at: string|null, source_name: string}[]} sightings
 *   those with a position; drawn in the order given.
 * @returns {SVGSVGElement}
 */
export function sightingsPlot(sightings) {
  const lats = sightings.map((s) => s.latitude);
  const lons = sightings.map((s) => s.longitude);
  const midLat = (Math.min(...lats) + Math.max(...lats)) / 2;
  const shrink = Math.max(Math.cos((midLat * Math.PI) / 180), 0.05);
  const xs = lons.map((lon) => lon * shrink);
  const span = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...lats) - Math.min(...lats), MIN_SPAN);
  const scale = Math.min(WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN) / span;
  const cx = (Math.min(...xs) + Math.max(...xs)) / 2;
  const cy = (Math.min(...lats) + Math.max(...lats)) / 2;
  const place = (s, i) => [WIDTH / 2 + (xs[i] - cx) * scale, HEIGHT / 2 - (s.latitude - cy) * scale];
  const points = sightings.map(place);
  return svg("svg", { class: "plot", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": "positions of the sightings" },
    svg("rect", { x: 0.5, y: 0.5, width: WIDTH - 1, height: HEIGHT - 1, class: "plot-frame" }),
    svg("polyline", { points: points.map((p) => p.join(",")).join(" "), class: "track" }),
    points.map(([x, y], i) => svg("circle", { cx: x, cy: y, r: 4, class: "sighting" },
      svg("title", {}, `${sightings[i].source_name} ${formatDate(sightings[i].taken_at)} `
        + `${degrees(sightings[i].latitude)}, ${degrees(sightings[i].longitude)}`))),
    svg("text", { x: 6, y: 14, class: "plot-label" }, `N ${degrees(Math.max(...lats))}`),
    svg("text", { x: 6, y: HEIGHT - 6, class: "plot-label" }, `S ${degrees(Math.min(...lats))}`),
    svg("text", { x: WIDTH - 6, y: HEIGHT - 6, class: "plot-label end" },
      `W ${degrees(Math.min(...lons))} · E ${degrees(Math.max(...lons))}`));
}
