// Just enough of a ZIP reader to show and send back the photos of a ZIP batch: the
// service answers each entry by its path, and a verdict needs the photo itself. Entries
// are listed from the central directory (as the service lists them) and inflated only
// when opened.

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const FLAG_ENCRYPTED = 0x1;
const FLAG_UTF8 = 0x800;
const MAX_COMMENT = 0xffff;
const MEDIA_TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp",
  gif: "image/gif", bmp: "image/bmp", tif: "image/tiff", tiff: "image/tiff",
  heic: "image/heic", heif: "image/heif" };

async function bytes(file, start, end) {
  return new DataView(await file.slice(start, end).arrayBuffer());
}

// What the service skips too: folders and the metadata macOS adds to its archives.
function skipped(path) {
  const parts = path.replaceAll("\\", "/").split("/");
  const base = parts.at(-1);
  return base === "" || parts[0] === "__MACOSX" || base.startsWith("._") || base === ".DS_Store";
}

async function centralDirectory(file) {
  const tailStart = Math.max(0, file.size - 22 - MAX_COMMENT);
  const tail = await bytes(file, tailStart, file.size);
  for (let at = tail.byteLength - 22; at >= 0; at--) {
    if (tail.getUint32(at, true) !== EOCD) continue;
    let count = tail.getUint16(at + 10, true);
    let offset = tail.getUint32(at + 16, true);
    let size = tail.getUint32(at + 12, true);
    if ((count === 0xffff || offset === 0xffffffff) && at >= 20 && tail.getUint32(at - 20, true) === ZIP64_LOCATOR) {
      const recordAt = Number(tail.getBigUint64(at - 12, true));
      const record = await bytes(file, recordAt, recordAt + 56);
      if (record.getUint32(0, true) !== ZIP64_EOCD) break;
      count = Number(record.getBigUint64(32, true));
      size = Number(record.getBigUint64(40, true));
      offset = Number(record.getBigUint64(48, true));
    }
    return { count, view: await bytes(file, offset, offset + size) };
  }
  throw new Error("not a readable ZIP archive");
}

// Sizes and offset too large for 32 bits are in the ZIP64 extra field, in this order.
function zip64(view, at, length, entry) {
  for (let p = at; p + 4 <= at + length;) {
    const id = view.getUint16(p, true);
    const size = view.getUint16(p + 2, true);
    if (id === 0x0001) {
      let q = p + 4;
      for (const key of ["size", "compressed", "offset"]) {
        if (entry[key] === 0xffffffff) {
          entry[key] = Number(view.getBigUint64(q, true));
          q += 8;
        }
      }
    }
    p += 4 + size;
  }
}

async function inflate(file, entry) {
  if (entry.flags & FLAG_ENCRYPTED) throw new Error("the entry is encrypted");
  const header = await bytes(file, entry.offset, entry.offset + 30);
  if (header.getUint32(0, true) !== LOCAL) throw new Error("the entry's data is damaged");
  const start = entry.offset + 30 + header.getUint16(26, true) + header.getUint16(28, true);
  const data = file.slice(start, start + entry.compressed);
  const extension = entry.name.split(".").at(-1).toLowerCase();
  const type = MEDIA_TYPES[extension] ?? "application/octet-stream";
  if (entry.method === 0) return new Blob([data], { type });
  if (entry.method !== 8) throw new Error("the entry is compressed in a way this browser cannot read");
  const inflated = data.stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Blob([await new Response(inflated).arrayBuffer()], { type });
}

/**
 * The files of a ZIP archive, in archive order, as the service answers them.
 * @param {File} file
 * @returns {Promise<{path: string, name: string, read: () => Promise<Blob>}[]>}
 */
export async function zipEntries(file) {
  const { count, view } = await centralDirectory(file);
  const entries = [];
  for (let at = 0, i = 0; i < count && at + 46 <= view.byteLength; i++) {
    if (view.getUint32(at, true) !== CENTRAL) throw new Error("the archive's directory is damaged");
    const flags = view.getUint16(at + 8, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const raw = new Uint8Array(view.buffer, view.byteOffset + at + 46, nameLength);
    const path = new TextDecoder(flags & FLAG_UTF8 ? "utf-8" : "windows-1252").decode(raw);
    const entry = {
      flags,
      method: view.getUint16(at + 10, true),
      compressed: view.getUint32(at + 20, true),
      size: view.getUint32(at + 24, true),
      offset: view.getUint32(at + 42, true),
      name: path.replaceAll("\\", "/").split("/").at(-1),
    };
    zip64(view, at + 46 + nameLength, extraLength, entry);
    at += 46 + nameLength + extraLength + commentLength;
    if (!skipped(path)) entries.push({ path, name: entry.name, read: () => inflate(file, entry) });
  }
  return entries;
}
