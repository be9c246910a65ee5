/**
 * Where a GigE Vision device keeps its GenICam description and how to get it: the first/second
 * URL register string (`Local:name.xml;addr;len`), reading the bytes, and unpacking a zipped
 * description with the runtime's own `DecompressionStream("deflate-raw")`.
 *
 * @module
 */

import { errorMessage } from "../../core/errors.ts";

/** A parsed `Local:` URL. */
export interface LocalUrl {
  fileName: string;
  address: number;
  length: number;
  zipped: boolean;
}

/** The URL or the archive is not usable. */
export class DescriptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DescriptionError";
  }
}

/** Text of a URL register: up to the first NUL, trimmed. */
export function urlText(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end)).trim();
}

function hexField(text: string, what: string, url: string): number {
  const t = text.trim().replace(/^0x/i, "");
  if (!/^[0-9a-fA-F]+$/.test(t)) {
    throw new DescriptionError(`description URL ${JSON.stringify(url)}: ${what} is not hex`);
  }
  return parseInt(t, 16);
}

/** Parses a description URL; only `Local:` (device memory) is supported. */
export function parseDescriptionUrl(url: string): LocalUrl {
  const m = /^\s*([A-Za-z]+):(.*)$/.exec(url);
  if (m === null) {
    throw new DescriptionError(`description URL ${JSON.stringify(url)} has no scheme`);
  }
  if (m[1].toLowerCase() !== "local") {
    throw new DescriptionError(
      `description URL ${JSON.stringify(url)}: scheme ${m[1]} not supported (only Local:)`,
    );
  }
  const rest = m[2].replace(/^\/\/\//, "").split("?")[0];
  const parts = rest.split(";");
  if (parts.length < 3) {
    throw new DescriptionError(`description URL ${JSON.stringify(url)}: want name;address;length`);
  }
  const fileName = parts[0].trim();
  const address = hexField(parts[1], "address", url);
  const length = hexField(parts[2], "length", url);
  if (length <= 0 || length > 64 * 1024 * 1024) {
    throw new DescriptionError(`description URL ${JSON.stringify(url)}: length ${length} unusable`);
  }
  return { fileName, address, length, zipped: /\.zip$/i.test(fileName) };
}

async function inflateRaw(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("deflate-raw"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Extracts the first file of a PKZIP archive (stored or deflated). */
export async function unzipFirst(zip: Uint8Array): Promise<{ name: string; data: Uint8Array }> {
  const dv = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (dv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new DescriptionError("zipped description: no end-of-central-directory record");
  }
  const entries = dv.getUint16(eocd + 10, true);
  const cdSize = dv.getUint32(eocd + 12, true);
  const cdOffset = dv.getUint32(eocd + 16, true);
  if (entries < 1) throw new DescriptionError("zipped description: archive is empty");
  const prefix = eocd - (cdOffset + cdSize);
  if (prefix < 0) throw new DescriptionError("zipped description: central directory out of range");
  const cd = cdOffset + prefix;
  if (cd + 46 > zip.length || dv.getUint32(cd, true) !== 0x02014b50) {
    throw new DescriptionError("zipped description: bad central directory entry");
  }
  const method = dv.getUint16(cd + 10, true);
  const compressed = dv.getUint32(cd + 20, true);
  const size = dv.getUint32(cd + 24, true);
  const nameLength = dv.getUint16(cd + 28, true);
  const local = dv.getUint32(cd + 42, true) + prefix;
  const name = new TextDecoder().decode(zip.subarray(cd + 46, cd + 46 + nameLength));
  if (local + 30 > zip.length || dv.getUint32(local, true) !== 0x04034b50) {
    throw new DescriptionError("zipped description: bad local file header");
  }
  const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
  if (start + compressed > zip.length) {
    throw new DescriptionError(`zipped description: ${name} runs past the archive`);
  }
  const raw = zip.subarray(start, start + compressed);
  let data: Uint8Array;
  if (method === 0) data = raw.slice();
  else if (method === 8) {
    try {
      data = await inflateRaw(raw);
    } catch (err) {
      throw new DescriptionError(
        `zipped description: ${name} does not inflate (${errorMessage(err)})`,
      );
    }
  } else throw new DescriptionError(`zipped description: compression method ${method} unsupported`);
  if (data.length !== size) {
    throw new DescriptionError(
      `zipped description: ${name} inflates to ${data.length}, not ${size}`,
    );
  }
  return { name, data };
}

/** Reads memory of a device (READMEM). */
export type MemoryReader = (address: number, length: number) => Promise<Uint8Array>;

/** The description text and where it came from. */
export interface Description {
  url: string;
  fileName: string;
  xml: string;
}

/**
 * Fetches the description: URL from `urlAddresses` in order (first, then second URL register),
 * then its bytes, inflating a `.zip`.
 */
export async function fetchDescription(
  read: MemoryReader,
  urlAddresses: readonly number[] = [0x0200, 0x0400],
): Promise<Description> {
  const problems: string[] = [];
  for (const at of urlAddresses) {
    const url = urlText(await read(at, 512));
    if (url === "") {
      problems.push(`URL register 0x${at.toString(16)} is empty`);
      continue;
    }
    let parsed: LocalUrl;
    try {
      parsed = parseDescriptionUrl(url);
    } catch (err) {
      problems.push(errorMessage(err));
      continue;
    }
    const bytes = await read(parsed.address, parsed.length);
    const data = parsed.zipped ? (await unzipFirst(bytes)).data : bytes;
    const end = data.indexOf(0);
    const xml = new TextDecoder().decode(end < 0 ? data : data.subarray(0, end));
    return { url, fileName: parsed.fileName, xml };
  }
  throw new DescriptionError(`no GenICam description: ${problems.join("; ")}`);
}
