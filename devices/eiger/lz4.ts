/**
 * LZ4 *block* format (no frame header): a bounds-checked decoder and an encoder that parses as
 * liblz4 does.
 *
 * The decoder works on caller-provided ranges of typed arrays so the bslz4/HDF5 containers can
 * decode each block straight into a reusable scratch buffer without copies. Every read and write is
 * checked; malformed input throws {@link Lz4Error}, never reads or writes out of range.
 *
 * @module
 */

/** Thrown on a malformed or truncated LZ4 block, or one that does not fit its expected size. */
export class Lz4Error extends Error {
  /** Creates an error with a message that says what is wrong with the block. */
  constructor(message: string) {
    super(message);
    this.name = "Lz4Error";
  }
}

/**
 * Decodes one LZ4 block `src[srcStart, srcEnd)` into `dst[dstStart, dstEnd)`.
 *
 * Returns the number of bytes written. Throws {@link Lz4Error} when the block is truncated, has an
 * invalid match offset, or would write past `dstEnd`.
 */
export function decodeLz4BlockInto(
  src: Uint8Array,
  srcStart: number,
  srcEnd: number,
  dst: Uint8Array,
  dstStart: number,
  dstEnd: number,
): number {
  let ip = srcStart;
  let op = dstStart;
  if (srcEnd > src.length || dstEnd > dst.length) {
    throw new Lz4Error("block range outside its buffer");
  }
  for (;;) {
    if (ip >= srcEnd) throw new Lz4Error("truncated block: missing token");
    const token = src[ip++];
    let lit = token >>> 4;
    if (lit === 15) {
      let b = 255;
      while (b === 255) {
        if (ip >= srcEnd) throw new Lz4Error("truncated block: literal length");
        b = src[ip++];
        lit += b;
      }
    }
    if (lit > 0) {
      if (lit > srcEnd - ip) throw new Lz4Error("truncated block: literals");
      if (lit > dstEnd - op) throw new Lz4Error("block decodes to more bytes than expected");
      if (lit <= 16 && srcEnd - ip >= 16 && dstEnd - op >= 16) {
        // Copy a fixed 16 bytes (unrolled); bytes past `lit` are overwritten later.
        copy16(src, ip, dst, op);
      } else if (lit < 64) {
        for (let i = 0; i < lit; i++) dst[op + i] = src[ip + i];
      } else {
        dst.set(src.subarray(ip, ip + lit), op);
      }
      ip += lit;
      op += lit;
    }
    if (ip === srcEnd) break;
    if (srcEnd - ip < 2) throw new Lz4Error("truncated block: match offset");
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op - dstStart) {
      throw new Lz4Error(`invalid match offset ${offset}`);
    }
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b = 255;
      while (b === 255) {
        if (ip >= srcEnd) throw new Lz4Error("truncated block: match length");
        b = src[ip++];
        len += b;
      }
    }
    if (len > dstEnd - op) throw new Lz4Error("block decodes to more bytes than expected");
    const from = op - offset;
    if (offset === 1) {
      dst.fill(dst[from], op, op + len);
      op += len;
    } else if (len <= 16 && offset >= 16 && dstEnd - op >= 16) {
      copy16(dst, from, dst, op); // no overlap within 16 bytes; extra bytes are rewritten later
      op += len;
    } else if (len <= 32) {
      for (let i = 0; i < len; i++) dst[op + i] = dst[from + i];
      op += len;
    } else if (offset >= len) {
      dst.copyWithin(op, from, from + len);
      op += len;
    } else {
      // Overlapping match: the pattern repeats with period `offset`; copy in doubling chunks.
      while (len > 0) {
        const n = Math.min(len, op - from);
        dst.copyWithin(op, from, from + n);
        op += n;
        len -= n;
      }
    }
  }
  return op - dstStart;
}

/** Copies exactly 16 bytes (unrolled: much faster than a loop for the short copies of LZ4). */
function copy16(src: Uint8Array, from: number, dst: Uint8Array, to: number): void {
  dst[to] = src[from];
  dst[to + 1] = src[from + 1];
  dst[to + 2] = src[from + 2];
  dst[to + 3] = src[from + 3];
  dst[to + 4] = src[from + 4];
  dst[to + 5] = src[from + 5];
  dst[to + 6] = src[from + 6];
  dst[to + 7] = src[from + 7];
  dst[to + 8] = src[from + 8];
  dst[to + 9] = src[from + 9];
  dst[to + 10] = src[from + 10];
  dst[to + 11] = src[from + 11];
  dst[to + 12] = src[from + 12];
  dst[to + 13] = src[from + 13];
  dst[to + 14] = src[from + 14];
  dst[to + 15] = src[from + 15];
}

/**
 * Decodes one LZ4 block that must expand to exactly `size` bytes.
 *
 * Throws {@link Lz4Error} on malformed input or when the decoded size differs from `size`.
 */
export function decompressLz4Block(src: Uint8Array, size: number): Uint8Array {
  if (!Number.isSafeInteger(size) || size < 0) throw new Lz4Error(`invalid size ${size}`);
  // An LZ4 block expands at most ~255:1; refuse sizes the input cannot possibly produce.
  if (size > src.length * 255 + 16) {
    throw new Lz4Error(`expected size ${size} impossible for a ${src.length}-byte block`);
  }
  const dst = new Uint8Array(size);
  const n = decodeLz4BlockInto(src, 0, src.length, dst, 0, size);
  if (n !== size) throw new Lz4Error(`block decoded to ${n} bytes, expected ${size}`);
  return dst;
}

/** Upper bound of the compressed size of `n` input bytes (LZ4's worst case). */
export function lz4CompressBound(n: number): number {
  return n + Math.ceil(n / 255) + 16;
}

/** Hash bits of the match finder (a table of 2^13 positions, as liblz4 for small inputs). */
const HASH_LOG = 13;
/** Inputs below this size are parsed exactly as liblz4 parses them (its 16-bit table mode). */
const SMALL_INPUT = 65536 + 11;
/** The last match starts at least this many bytes before the end (format rule). */
const MF_LIMIT = 12;
/** The last bytes of a block are always literals (format rule). */
const LAST_LITERALS = 5;
/** After 2^6 failed searches the search step grows by one (liblz4's acceleration 1). */
const SKIP_TRIGGER = 6;
const hashTable = new Int32Array(1 << HASH_LOG);

function read32(src: Uint8Array, p: number): number {
  return src[p] | (src[p + 1] << 8) | (src[p + 2] << 16) | (src[p + 3] << 24);
}

function hash4(src: Uint8Array, p: number): number {
  return Math.imul(read32(src, p), 2654435761) >>> (32 - HASH_LOG);
}

/**
 * Compresses `src[start, end)` into one LZ4 block written at `dst[dstStart]`. `dst` must have
 * room for {@link lz4CompressBound} bytes. Returns the compressed length.
 *
 * The parse is liblz4's fast one (`LZ4_compress_default`): a 13-bit hash of 4 bytes names the
 * last position seen with it (all positions start at 0), the search step grows after every 64
 * misses, a found match is first extended backwards into the pending literals, and after a match
 * the position 2 bytes back is hashed and the next position tried at once. Inputs below 64 KiB
 * + 11 bytes (bitshuffle's 8 KiB blocks) therefore compress byte for byte as the C library does,
 * so the simulator's frames are the DCU's; larger inputs differ from it (liblz4 then hashes 5
 * bytes) but stay valid. The output follows the format's end rules (last 5 bytes literals, last
 * match ≥ 12 bytes before the end), so any conforming decoder accepts it.
 */
export function compressLz4BlockInto(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
  dstStart: number,
): number {
  const n = end - start;
  let op = dstStart;
  let anchor = start;
  if (n > MF_LIMIT) {
    const small = n < SMALL_INPUT;
    const table = hashTable;
    table.fill(0);
    const searchEnd = end - MF_LIMIT + 1; // a match may start below this
    const matchEnd = end - LAST_LITERALS; // and end at most here
    table[hash4(src, start)] = 0;
    let ip = start + 1;
    let nextHash = hash4(src, ip);
    let ended = false;
    while (!ended) {
      // Find a match: step through the input, faster after many misses.
      let next = ip;
      let step = 1;
      let misses = 1 << SKIP_TRIGGER;
      let match = -1;
      while (match < 0) {
        const h = nextHash;
        const candidate = start + table[h];
        ip = next;
        next += step;
        step = misses++ >>> SKIP_TRIGGER;
        if (next > searchEnd) break;
        nextHash = hash4(src, next);
        table[h] = ip - start;
        if ((small || ip - candidate <= 65535) && read32(src, candidate) === read32(src, ip)) {
          match = candidate;
        }
      }
      if (match < 0) break; // the rest are literals
      // Extend it backwards over equal bytes of the pending literals.
      while (ip > anchor && match > start && src[ip - 1] === src[match - 1]) {
        ip--;
        match--;
      }
      let literals = ip - anchor;
      let again = true;
      while (again) {
        let len = 4;
        while (ip + len < matchEnd && src[match + len] === src[ip + len]) len++;
        op = writeSequence(src, anchor, literals, dst, op, len, ip - match);
        ip += len;
        anchor = ip;
        if (ip >= searchEnd) {
          ended = true;
          break;
        }
        table[hash4(src, ip - 2)] = ip - 2 - start;
        // A match right here follows without literals.
        const h = hash4(src, ip);
        match = start + table[h];
        table[h] = ip - start;
        again = (small || ip - match <= 65535) && read32(src, match) === read32(src, ip);
        literals = 0;
      }
      if (!ended) {
        ip++;
        nextHash = hash4(src, ip);
      }
    }
  }
  op = writeSequence(src, anchor, end - anchor, dst, op, 0, 0);
  return op - dstStart;
}

/** Compresses `data` into one LZ4 block ({@link compressLz4BlockInto}). */
export function compressLz4Block(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(lz4CompressBound(data.length));
  const n = compressLz4BlockInto(data, 0, data.length, out, 0);
  return out.slice(0, n);
}

function writeSequence(
  src: Uint8Array,
  litStart: number,
  lit: number,
  dst: Uint8Array,
  op: number,
  matchLen: number,
  offset: number,
): number {
  const tokenPos = op++;
  let token = 0;
  if (lit >= 15) {
    token = 0xf0;
    let rest = lit - 15;
    while (rest >= 255) {
      dst[op++] = 255;
      rest -= 255;
    }
    dst[op++] = rest;
  } else {
    token = lit << 4;
  }
  dst.set(src.subarray(litStart, litStart + lit), op);
  op += lit;
  if (matchLen > 0) {
    dst[op++] = offset & 0xff;
    dst[op++] = offset >>> 8;
    const m = matchLen - 4;
    if (m >= 15) {
      token |= 15;
      let rest = m - 15;
      while (rest >= 255) {
        dst[op++] = 255;
        rest -= 255;
      }
      dst[op++] = rest;
    } else {
      token |= m;
    }
  }
  dst[tokenPos] = token;
  return op;
}
