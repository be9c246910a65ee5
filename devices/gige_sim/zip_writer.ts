/**
 * Writes a one-file PKZIP archive (stored or raw-deflated with the runtime's CompressionStream),
 * as cameras ship zipped GenICam descriptions: for the simulator and tests.
 *
 * @module
 */

/** How to write the archive. */
export interface ZipOptions {
  /** 8 = deflate (default), 0 = stored. */
  method?: 0 | 8;
  /** Bytes of padding before the archive (some devices have a header in front). */
  prefix?: number;
  /** Replace the compressed bytes (to build broken archives). */
  mangle?: (body: Uint8Array) => Uint8Array;
}

/** Raw-deflates bytes with the runtime's CompressionStream. */
export async function deflateRaw(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate-raw"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A PKZIP archive holding `data` as `name`. */
export async function zipArchive(
  name: string,
  data: Uint8Array,
  options: ZipOptions = {},
): Promise<Uint8Array> {
  const method = options.method ?? 8;
  const prefix = options.prefix ?? 0;
  let body = method === 8 ? await deflateRaw(data) : data;
  if (options.mangle !== undefined) body = options.mangle(body);
  const nameBytes = new TextEncoder().encode(name);
  const out = new Uint8Array(
    prefix + 30 + nameBytes.length + body.length + 46 + nameBytes.length + 22,
  );
  const dv = new DataView(out.buffer);
  const local = prefix;
  dv.setUint32(local, 0x04034b50, true);
  dv.setUint16(local + 8, method, true);
  dv.setUint32(local + 18, body.length, true);
  dv.setUint32(local + 22, data.length, true);
  dv.setUint16(local + 26, nameBytes.length, true);
  out.set(nameBytes, local + 30);
  out.set(body, local + 30 + nameBytes.length);
  const cd = local + 30 + nameBytes.length + body.length;
  dv.setUint32(cd, 0x02014b50, true);
  dv.setUint16(cd + 10, method, true);
  dv.setUint32(cd + 20, body.length, true);
  dv.setUint32(cd + 24, data.length, true);
  dv.setUint16(cd + 28, nameBytes.length, true);
  dv.setUint32(cd + 42, 0, true); // local header offset, relative to the archive start
  out.set(nameBytes, cd + 46);
  const eocd = cd + 46 + nameBytes.length;
  dv.setUint32(eocd, 0x06054b50, true);
  dv.setUint16(eocd + 8, 1, true);
  dv.setUint16(eocd + 10, 1, true);
  dv.setUint32(eocd + 12, 46 + nameBytes.length, true);
  dv.setUint32(eocd + 16, cd - prefix, true);
  return out;
}
