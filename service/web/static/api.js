// The HTTP API as the page uses it: the API key (asked for once, on the first 401, and
// kept for the browser tab), errors as the service's own message, photos and streams.

import { formDialog } from "./dialogs.js";
import { h } from "./dom.js";

const KEY_STORAGE = "whaleid.apiKey";
const BATCH_TOTAL = "X-Batch-Total";
// Photos fetched with the key (reads protected) become blob URLs; this many are kept.
const MAX_PHOTO_URLS = 300;

/** A refusal, with the service's message for a person. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Once a read was refused without the key, <img> can no longer fetch photos by URL:
// they are fetched with the key instead.
let readsProtected = false;
let asking = null;

function withKey(headers = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { ...headers, "X-API-Key": key } : headers;
}

function askForKey(reason) {
  const refused = sessionStorage.getItem(KEY_STORAGE) !== null;
  asking ??= formDialog({
    title: "API key",
    message: refused ? `That key was refused: ${reason}` : `This service asks for its API key: ${reason}`,
    fields: [{ name: "key", label: "API key", type: "password" }],
    confirm: "Use this key",
  }).then((values) => {
    asking = null;
    if (!values?.key) return false;
    sessionStorage.setItem(KEY_STORAGE, values.key);
    return true;
  });
  return asking;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not the service's JSON (a proxy's page, say): its status will do.
  }
  const detail = typeof body?.detail === "string" && body.detail
    ? body.detail
    : `the service answered ${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, body?.error ?? `http_${response.status}`, detail);
}

/**
 * Send a request; resolves with the (successful) Response, or throws an ApiError.
 * A 401 asks for the API key and sends the request again with it.
 * @param {string} method
 * @param {string} path
 * @param {{json?: any, form?: FormData, signal?: AbortSignal, read?: boolean}} options
 *   read: a request that changes nothing (GET, identification).
 */
export async function send(method, path, { json, form, signal, read = method === "GET" } = {}) {
  for (;;) {
    const init = { method, signal, headers: withKey() };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    } else if (form) {
      init.body = form;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "unreachable", "the service cannot be reached: is whaleid serve running?");
    }
    if (response.ok) return response;
    const error = await errorOf(response);
    if (response.status !== 401) throw error;
    if (read) readsProtected = true;
    if (!(await askForKey(error.message))) throw error;
  }
}

/** GET a JSON resource. */
export async function getJson(path, options) {
  return (await send("GET", path, options)).json();
}

/** Send a JSON body (or none); resolves with the JSON answer, or null for 204. */
export async function sendJson(method, path, json) {
  const response = await send(method, path, { json });
  return response.status === 204 ? null : response.json();
}

/** POST a multipart form; resolves with the JSON answer. */
export async function postForm(path, form) {
  return (await send("POST", path, { form })).json();
}

/**
 * Identify a batch (photos and/or a ZIP), calling `onTotal(n)` when the service says how
 * many answers follow and `onAnswer(line)` for each NDJSON line as it arrives.
 */
export async function identifyBatch(form, topK, { onTotal, onAnswer }) {
  const response = await send("POST", `/v1/identify/batch?top_k=${topK}`, { form, read: true });
  const total = Number.parseInt(response.headers.get(BATCH_TOTAL) ?? "", 10);
  if (Number.isInteger(total)) onTotal(total);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch {
      throw new ApiError(0, "interrupted", "the answers stopped before the end (the connection was lost)");
    }
    if (chunk.done) break;
    pending += chunk.value;
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, end).trim();
      pending = pending.slice(end + 1);
      if (line) onAnswer(JSON.parse(line));
    }
  }
  if (pending.trim()) onAnswer(JSON.parse(pending));
}

/** URL of a stored photo's thumbnail (long side `size`). */
export function thumbnailPath(imageId, size) {
  return `/v1/images/${imageId}/thumbnail?size=${size}`;
}

/** URL of a stored photo's original file. */
export function filePath(imageId) {
  return `/v1/images/${imageId}/file`;
}

const photoUrls = new Map();

/** A URL an <img> can show the photo at `path` from: the path itself, or (when reads
 * need the key) a blob URL of the photo fetched with it. */
export function photoUrl(path) {
  if (!readsProtected) return Promise.resolve(path);
  let url = photoUrls.get(path);
  if (!url) {
    url = send("GET", path).then((r) => r.blob()).then((blob) => URL.createObjectURL(blob));
    url.catch(() => photoUrls.delete(path));
    photoUrls.set(path, url);
    if (photoUrls.size > MAX_PHOTO_URLS) {
      const [oldest, stale] = photoUrls.entries().next().value;
      photoUrls.delete(oldest);
      stale.then((u) => URL.revokeObjectURL(u), () => {});
    }
  }
  return url;
}

/** Show the photo at `path` in `img`; a photo that cannot be fetched leaves it empty. */
export async function showPhoto(img, path) {
  try {
    img.src = await photoUrl(path);
  } catch {
    img.removeAttribute("src");
  }
}

const records = new Map();

/** A stored photo's record (file name, size, date, GPS), fetched once. */
export function imageRecord(imageId) {
  let record = records.get(imageId);
  if (!record) {
    record = getJson(`/v1/images/${imageId}`);
    record.catch(() => records.delete(imageId));
    records.set(imageId, record);
  }
  return record;
}

/** Save what `path` answers as a file named `filename`. */
export async function download(path, filename) {
  const blob = await (await send("GET", path)).blob();
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
