/**
 * WebAssembly (SIMD) kernels of the bslz4 / LZ4 decoders: our own module, written below as
 * WebAssembly text and assembled at load by `core/wasm_text.ts` (no toolchain, nothing fetched).
 *
 * - `lz4(ip, ipEnd, op, opStart, opEnd) → written | -error`: one LZ4 block, every length and
 *   offset checked against the block (a malformed block never makes it read before `opStart`
 *   or past `ipEnd + 16`, nor write outside `[op, opEnd + 32)`), with 16-byte vector copies
 *   for literals and matches: "wild" copies that may run past a run's end into bytes written
 *   later or into the slack after the region, so callers leave {@link SLACK} bytes after every
 *   region and never show them. Three ways through a block: a far loop for runs of short
 *   sequences whose match source lies at least 16 bytes back (two vector copies, no table; bright
 *   images are nearly all such sequences), a general loop for the usual sequence (literals < 15,
 *   match < 274 bytes, any offset; one code without branches for all offsets, so that images
 *   mixing short and far offsets mispredict nothing) which hands back to the far loop after 32 far
 *   matches in a row, and a slow path that checks every step and names what is wrong. Short
 *   match offsets (< 16) repeat their pattern with `i8x16.relaxed_swizzle` (indices all < 16,
 *   where it equals `i8x16.swizzle` on every engine) through a table held in a data segment below
 *   {@link FREE_AT}.
 * - `unshuffle1|2|4(src, dst, nb)`: bit-unshuffles one block of 8·nb elements of 1, 2 or 4
 *   bytes (`nb` a multiple of 16): for 16 plane-byte columns at a time, an 8×8 bit transpose of
 *   the 8 bit planes of each element byte (12 masked swaps on v128; skipped when all 8 planes are
 *   zero, the common case for sparse detector images), then a byte transpose of the 8·size
 *   vectors into element order by log2(8·size) rounds of byte interleaving (`i8x16.shuffle`).
 *   For 2- and 4-byte elements, 128 elements whose upper planes are all zero (counts below 256)
 *   take a shorter way: only the low bytes are transposed (3 rounds) and then widened with
 *   `extend` to 16 or 32 bits.
 *
 * The container logic (headers, sizes, error texts) stays in `bslz4.ts`.
 *
 * @module
 */

import { assembleWat } from "../../core/wasm_text.ts";

/** Bytes every region needs after its end for the wild copies (they overshoot by < 32). */
export const SLACK = 64;

/** LZ4 kernel error codes (negative return values) and what they mean. */
export const LZ4_ERRORS: Readonly<Record<number, string>> = {
  [-1]: "truncated block: missing token",
  [-2]: "truncated block: literal length",
  [-3]: "truncated block: literals",
  [-4]: "block decodes to more bytes than expected",
  [-5]: "truncated block: match offset",
  [-6]: "invalid match offset",
  [-7]: "truncated block: match length",
};

/** Largest module memory, pages of 64 KiB (1 GiB). */
const MAX_PAGES = 16384;

/** Where the module's constant tables live (a data segment at the start of memory). */
const PATTERN_AT = 0; // 17 × 16 swizzle indices: row o repeats lanes 0..o-1 (row 16: identity)
const STEP_AT = PATTERN_AT + 17 * 16; // 17 bytes: for o, the largest multiple of o that is ≤ 16

/** First module address callers may use; below it are the kernel's tables. */
export const FREE_AT = 512;

/** The data segment of the tables (`\hh` escapes), see {@link PATTERN_AT}, {@link STEP_AT}. */
function tablesText(): string {
  const bytes: number[] = [];
  for (let o = 0; o <= 16; o++) {
    for (let i = 0; i < 16; i++) bytes.push(o === 0 ? 0 : i % o);
  }
  for (let o = 0; o <= 16; o++) bytes.push(o === 0 ? 0 : 16 - (16 % o));
  const hex = bytes.map((b) => "\\" + b.toString(16).padStart(2, "0")).join("");
  return `(data (i32.const ${PATTERN_AT}) "${hex}")`;
}

/** Match bytes (after the first 32) from which a non-overlapping match is one `memory.copy`. */
const BULK_MATCH = 256;

/** Saturation bound of a length being accumulated: above any output, below i32 overflow. */
const LENGTH_CAP = 0x40000000;

/**
 * The match copy both paths share: `$mop` (where the match goes), `$off` (≥ 1, checked) and
 * `$end` (`$mop` + length, ≤ the output end) set; writes up to 31 bytes past `$end`.
 *
 * One code for every offset, no branch for matches up to step + 16 bytes (≥ 25; 32 for offsets
 * 1, 2, 4, 8 and ≥ 16): the 16 bytes at the source go through a swizzle with row min(off, 16) of
 * the pattern table (row o repeats lanes 0..o-1; row 16 is the identity) and are stored at
 * `$mop`. A second store at `$mop + step` (`step`: the largest multiple of off ≤ 16) writes the
 * next 16 source bytes (off ≥ 16; read after the first store, so 16 ≤ off < 32 sees it) or, for a
 * short period, the same pattern again, reloaded from `$mop` (a whole forwarded store, no stall).
 * Longer matches repeat the pattern vector (off < 16: runs of one byte, of 16- or 32-bit zeros)
 * or copy 32 bytes a round.
 */
function matchCopyText(): string {
  return `
      local.get $mop local.get $off i32.sub local.set $from
      local.get $off i32.const 16 local.get $off i32.const 16 i32.lt_u select local.tee $o
      i32.load8_u offset=${STEP_AT} local.set $step
      local.get $from v128.load align=1
      local.get $o i32.const 4 i32.shl v128.load offset=${PATTERN_AT}
      i8x16.relaxed_swizzle local.set $v
      local.get $mop local.get $v v128.store align=1
      ;; from + min(off, 16): the next 16 source bytes, or for a short period $mop itself
      local.get $mop local.get $step i32.add
      local.get $from local.get $o i32.add v128.load align=1 v128.store align=1
      local.get $mop local.get $step i32.add i32.const 16 i32.add local.get $end i32.lt_u
      if
        local.get $off i32.const 16 i32.lt_u
        if
          local.get $mop local.get $step i32.const 1 i32.shl i32.add local.set $q
          loop $rep
            local.get $q local.get $v v128.store align=1
            local.get $q local.get $step i32.add local.get $v v128.store align=1
            local.get $q local.get $step i32.const 1 i32.shl i32.add local.tee $q
            local.get $end i32.lt_u br_if $rep
          end
        else
          local.get $mop i32.const 32 i32.add local.set $q
          local.get $from i32.const 32 i32.add local.set $from
          local.get $end local.get $q i32.sub local.tee $n i32.const ${BULK_MATCH} i32.ge_u
          local.get $off local.get $n i32.ge_u i32.and
          if
            ;; a long match that does not overlap its source (runs of zero rows): one bulk copy
            local.get $q local.get $from local.get $n memory.copy
          else
            loop $copy
              local.get $q local.get $from v128.load align=1 v128.store align=1
              local.get $q local.get $from v128.load offset=16 align=1 v128.store offset=16 align=1
              local.get $from i32.const 32 i32.add local.set $from
              local.get $q i32.const 32 i32.add local.tee $q
              local.get $end i32.lt_u br_if $copy
            end
          end
        end
      end`;
}

/** Far matches in a row after which the general loop hands back to the far loop. */
const FAR_RUN = 32;

/**
 * The far loop: sequences with literals < 15, a match nibble < 15 (4–18 bytes) and an offset of
 * at least 16 (the source does not overlap the first 16 bytes written), everything in range:
 * two vector copies and no table. Any other sequence leaves for the general loop (`$general`)
 * unread. Images with many short sequences of such matches (bright counts) spend their time here;
 * mixed ones (short periods between far matches) stay in the general loop, whose one code for all
 * offsets has no branch to mispredict.
 */
function farLoopText(): string {
  return `
    loop $far
      local.get $ip local.get $ipLimit i32.gt_s br_if $general
      local.get $op local.get $opLimit i32.gt_s br_if $general
      ;; the next position is ip + 3 + literals: ip + 3 added while the token loads
      local.get $ip i32.const 3 i32.add local.set $q
      local.get $ip i32.load8_u local.tee $token i32.const 0xf0 i32.ge_u br_if $general
      local.get $token i32.const 15 i32.and local.tee $len i32.const 15 i32.eq br_if $general
      local.get $ip local.get $token i32.const 4 i32.shr_u local.tee $b i32.add
      i32.load16_u offset=1 align=1 local.tee $off i32.const 16 i32.lt_u br_if $general
      local.get $op local.get $b i32.add local.tee $mop
      local.get $opStart i32.sub local.get $off i32.lt_u br_if $general
      local.get $op local.get $ip v128.load offset=1 align=1 v128.store align=1
      local.get $mop local.get $mop local.get $off i32.sub local.tee $from
      v128.load align=1 v128.store align=1
      local.get $mop local.get $from v128.load offset=16 align=1 v128.store offset=16 align=1
      local.get $q local.get $b i32.add local.set $ip
      local.get $mop local.get $len i32.add i32.const 4 i32.add local.set $op
      br $far
    end`;
}

function lz4Text(): string {
  // A length extension: bytes of 255 continue it; the sum saturates at LENGTH_CAP (never wraps),
  // so an absurd length fails the same output/input checks the JavaScript decoder applies.
  const lengthLoop = (error: number) => `
      loop $more
        local.get $ip local.get $ipEnd i32.ge_u if i32.const ${error} return end
        local.get $ip i32.load8_u local.set $b
        local.get $ip i32.const 1 i32.add local.set $ip
        local.get $len local.get $b i32.add local.tee $len
        i32.const ${LENGTH_CAP} local.get $len i32.const ${LENGTH_CAP} i32.lt_u select local.set $len
        local.get $b i32.const 255 i32.eq br_if $more
      end`;
  return `
  (func (export "lz4") (param $ip i32) (param $ipEnd i32) (param $op i32) (param $opStart i32)
    (param $opEnd i32) (result i32)
    (local $token i32) (local $len i32) (local $b i32) (local $end i32) (local $from i32)
    (local $off i32) (local $o i32) (local $step i32) (local $v v128) (local $ipLimit i32)
    (local $mop i32) (local $q i32) (local $ext i32) (local $n i32) (local $opLimit i32)
    (local $farRun i32)
    ;; the fast loops read at most 18 input bytes (token, 14 literals, offset, one length byte),
    ;; the far loop writes at most 32 bytes (14 literals, 18 match bytes); as signed limits
    ;; (addresses are < 2^30)
    local.get $ipEnd i32.const 18 i32.sub local.set $ipLimit
    local.get $opEnd i32.const 32 i32.sub local.set $opLimit
    block $done
    loop $modes
    block $general
    ${farLoopText()}
    end
    i32.const 0 local.set $farRun
    loop $seq
      block $slow
        ;; general loop (nearly every sequence the far loop leaves): literal length < 15, match
        ;; length < 19 + 255, all its input bytes present, its output inside the block. Any
        ;; other sequence, valid or not, goes the slow path, which checks every step and names
        ;; what is wrong.
        local.get $ip local.get $ipLimit i32.gt_s br_if $slow
        local.get $ip i32.load8_u local.tee $token i32.const 0xf0 i32.ge_u br_if $slow
        local.get $op local.get $token i32.const 4 i32.shr_u local.tee $b i32.add local.set $mop
        local.get $ip local.get $b i32.add local.tee $b
        i32.load16_u offset=1 align=1 local.set $off
        ;; match length: the nibble + 4, plus the next byte when the nibble is 15 (read anyway;
        ;; a 255 there, a longer extension, is left to the slow path)
        local.get $token i32.const 15 i32.and local.tee $len i32.const 15 i32.eq local.set $ext
        local.get $len i32.const 4 i32.add
        local.get $b i32.load8_u offset=3 i32.const 0 local.get $ext i32.sub i32.and
        i32.add local.tee $len i32.const 274 i32.eq br_if $slow
        local.get $mop local.get $len i32.add local.tee $end local.get $opEnd i32.gt_u br_if $slow
        ;; off - 1 ≥ produced bytes: offset 0 (wraps) or before the block start
        local.get $off i32.const 1 i32.sub local.get $mop local.get $opStart i32.sub i32.ge_u
        br_if $slow
        local.get $op local.get $ip v128.load offset=1 align=1 v128.store align=1
        ${matchCopyText()}
        local.get $b local.get $ext i32.add i32.const 3 i32.add local.set $ip
        local.get $end local.set $op
        ;; back to the far loop after ${FAR_RUN} far matches in a row
        local.get $farRun i32.const 1 i32.add i32.const 0 local.get $off i32.const 16 i32.ge_u
        select local.tee $farRun i32.const ${FAR_RUN} i32.lt_u br_if $seq
        br $modes
      end
      local.get $ip local.get $ipEnd i32.ge_u if i32.const -1 return end
      local.get $ip i32.load8_u local.set $token
      local.get $ip i32.const 1 i32.add local.set $ip
      local.get $token i32.const 4 i32.shr_u local.tee $len
      i32.const 15 i32.eq
      if ${lengthLoop(-2)}
      end
      ;; literals: checked against both ends, then copied 16 bytes at a time (the excess lands
      ;; in the slack or is overwritten by what follows)
      local.get $len local.get $ipEnd local.get $ip i32.sub i32.gt_u if i32.const -3 return end
      local.get $len local.get $opEnd local.get $op i32.sub i32.gt_u if i32.const -4 return end
      local.get $op local.get $len i32.add local.set $end
      local.get $ip local.set $from
      local.get $op local.set $q
      loop $lit
        local.get $q local.get $from v128.load align=1 v128.store align=1
        local.get $from i32.const 16 i32.add local.set $from
        local.get $q i32.const 16 i32.add local.tee $q
        local.get $end i32.lt_u br_if $lit
      end
      local.get $ip local.get $len i32.add local.tee $ip
      local.get $end local.set $op
      local.get $ipEnd i32.eq br_if $done
      local.get $ipEnd local.get $ip i32.sub i32.const 2 i32.lt_u if i32.const -5 return end
      local.get $ip i32.load16_u align=1 local.set $off
      local.get $ip i32.const 2 i32.add local.set $ip
      local.get $off i32.const 1 i32.sub local.get $op local.get $opStart i32.sub i32.ge_u
      if i32.const -6 return end
      local.get $token i32.const 15 i32.and local.tee $len
      i32.const 15 i32.eq
      if ${lengthLoop(-7)}
      end
      local.get $len i32.const 4 i32.add local.tee $len
      local.get $opEnd local.get $op i32.sub i32.gt_u if i32.const -4 return end
      local.get $op local.get $len i32.add local.set $end
      local.get $op local.set $mop
      ${matchCopyText()}
      local.get $end local.set $op
      br $seq
    end
    end
    end
    local.get $op local.get $opStart i32.sub)`;
}

/** Pairs of rows of the 8×8 bit transpose: [a, b, shift, mask constant]. */
const BIT_SWAPS: [number, number, number, string][] = [
  [0, 1, 1, "$m1"],
  [2, 3, 1, "$m1"],
  [4, 5, 1, "$m1"],
  [6, 7, 1, "$m1"],
  [0, 2, 2, "$m2"],
  [1, 3, 2, "$m2"],
  [4, 6, 2, "$m2"],
  [5, 7, 2, "$m2"],
  [0, 4, 4, "$m4"],
  [1, 5, 4, "$m4"],
  [2, 6, 4, "$m4"],
  [3, 7, 4, "$m4"],
];

const LO = "0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23";
const HI = "8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31";

/** One round of the byte transpose: row i interleaved with row i + n/2 (n rows). */
function interleaveRound(rows: string[], out: string[], lines: string[]): void {
  const half = rows.length / 2;
  for (let i = 0; i < half; i++) {
    const a = `local.get ${rows[i]} local.get ${rows[i + half]}`;
    lines.push(`${a} i8x16.shuffle ${LO} local.set ${out[2 * i]}`);
    lines.push(`${a} i8x16.shuffle ${HI} local.set ${out[2 * i + 1]}`);
  }
}

/** The 8×8 bit transpose of the 8 rows `row(0..7)`, skipped when all are zero. */
function bitTranspose(row: (k: number) => string, lines: string[]): void {
  lines.push(
    `local.get ${row(0)} ${
      [1, 2, 3, 4, 5, 6, 7].map((k) => `local.get ${row(k)} v128.or`).join(" ")
    } v128.any_true`,
  );
  lines.push("if");
  for (const [a, b, shift, mask] of BIT_SWAPS) {
    lines.push(
      `local.get ${row(a)} i32.const ${shift} i64x2.shr_u local.get ${row(b)} v128.xor ` +
        `local.get ${mask} v128.and local.set $t`,
      `local.get ${row(b)} local.get $t v128.xor local.set ${row(b)}`,
      `local.get ${row(a)} local.get $t i32.const ${shift} i64x2.shl v128.xor ` +
        `local.set ${row(a)}`,
    );
  }
  lines.push("end");
}

/**
 * Stores 128 elements of `size` bytes whose low bytes are the 8 rows `low` in element order
 * (16 each) and whose other bytes are zero: each row widened to `size` bytes per lane.
 */
function storeWidened(low: string[], size: number, lines: string[]): void {
  low.forEach((row, i) => {
    const at = 16 * size * i;
    if (size === 2) {
      lines.push(
        `local.get $dst local.get ${row} i16x8.extend_low_i8x16_u v128.store offset=${at} align=1`,
        `local.get $dst local.get ${row} i16x8.extend_high_i8x16_u v128.store offset=${
          at + 16
        } align=1`,
      );
      return;
    }
    lines.push(
      `local.get ${row} i16x8.extend_low_i8x16_u local.set $t`,
      `local.get $dst local.get $t i32x4.extend_low_i16x8_u v128.store offset=${at} align=1`,
      `local.get $dst local.get $t i32x4.extend_high_i16x8_u v128.store offset=${at + 16} align=1`,
      `local.get ${row} i16x8.extend_high_i8x16_u local.set $t`,
      `local.get $dst local.get $t i32x4.extend_low_i16x8_u v128.store offset=${at + 32} align=1`,
      `local.get $dst local.get $t i32x4.extend_high_i16x8_u v128.store offset=${at + 48} align=1`,
    );
  });
}

function unshuffleText(size: number): string {
  const rows = 8 * size;
  const rounds = Math.log2(rows);
  const lines: string[] = [];
  const locals: string[] = [];
  for (let i = 0; i < rows; i++) locals.push(`(local $x${i} v128) (local $y${i} v128)`);
  for (let p = 1; p < rows; p++) locals.push(`(local $q${p} i32)`);
  // Plane p starts at src + p·nb.
  for (let p = 1; p < rows; p++) {
    lines.push(`local.get $nb i32.const ${p} i32.mul local.set $q${p}`);
  }
  lines.push("local.get $src local.get $nb i32.add local.set $end");
  lines.push("loop $col");
  // Plane 8j+k into row k·size + j; after the transpose that row holds element byte m = k.
  const rowOf = (j: number) => (k: number) => `$x${k * size + j}`;
  for (let j = 0; j < size; j++) {
    for (let k = 0; k < 8; k++) {
      const p = 8 * j + k;
      const addr = p === 0 ? "local.get $src" : `local.get $src local.get $q${p} i32.add`;
      lines.push(`${addr} v128.load align=1 local.set ${rowOf(j)(k)}`);
    }
  }
  if (size > 1) {
    // Counts below 256 (every upper bit plane zero in these 128 elements), the usual case of
    // photon-counting frames at kHz rates: transpose the low bytes only and widen them.
    const upper: string[] = [];
    for (let j = 1; j < size; j++) {
      for (let k = 0; k < 8; k++) upper.push(`local.get ${rowOf(j)(k)}`);
    }
    lines.push(
      `${upper[0]} ${upper.slice(1).map((r) => `${r} v128.or`).join(" ")} v128.any_true`,
      "i32.eqz",
      "if",
    );
    bitTranspose(rowOf(0), lines);
    const low = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => rowOf(0)(k));
    const a = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => `$y${i}`);
    const b = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => `$y${i + 8}`);
    interleaveRound(low, a, lines);
    interleaveRound(a, b, lines);
    interleaveRound(b, a, lines);
    storeWidened(a, size, lines);
    lines.push("else");
  }
  for (let j = 0; j < size; j++) bitTranspose(rowOf(j), lines);
  // Byte transpose rows × 16 → 16 × rows: each round interleaves row i with row i + rows/2.
  let from = "x";
  let to = "y";
  for (let r = 0; r < rounds; r++) {
    const names = (c: string) => Array.from({ length: rows }, (_, i) => `$${c}${i}`);
    interleaveRound(names(from), names(to), lines);
    [from, to] = [to, from];
  }
  for (let i = 0; i < rows; i++) {
    lines.push(`local.get $dst local.get $${from}${i} v128.store offset=${16 * i} align=1`);
  }
  if (size > 1) lines.push("end");
  lines.push(
    `local.get $dst i32.const ${16 * rows} i32.add local.set $dst`,
    "local.get $src i32.const 16 i32.add local.tee $src",
    "local.get $end i32.lt_u br_if $col",
    "end",
  );
  return `
  (func (export "unshuffle${size}") (param $src i32) (param $dst i32) (param $nb i32)
    (local $end i32) (local $t v128) (local $m1 v128) (local $m2 v128) (local $m4 v128)
    ${locals.join(" ")}
    v128.const i32x4 0x55555555 0x55555555 0x55555555 0x55555555 local.set $m1
    v128.const i32x4 0x33333333 0x33333333 0x33333333 0x33333333 local.set $m2
    v128.const i32x4 0x0f0f0f0f 0x0f0f0f0f 0x0f0f0f0f 0x0f0f0f0f local.set $m4
    ${lines.join("\n    ")})`;
}

/** The module text (exported for tests and documentation). */
export function codecModuleText(): string {
  return `(module
  (memory (export "memory") 1 ${MAX_PAGES})
  ${tablesText()}
  ${lz4Text()}
  ${unshuffleText(1)}
  ${unshuffleText(2)}
  ${unshuffleText(4)}
)`;
}

interface CodecExports {
  memory: WebAssembly.Memory;
  lz4(ip: number, ipEnd: number, op: number, opStart: number, opEnd: number): number;
  unshuffle1(src: number, dst: number, nb: number): void;
  unshuffle2(src: number, dst: number, nb: number): void;
  unshuffle4(src: number, dst: number, nb: number): void;
}

/** An instantiated codec module with its memory. */
export interface WasmCodec {
  /** Decodes one LZ4 block between module addresses; bytes written or a negative error code. */
  lz4(ip: number, ipEnd: number, op: number, opStart: number, opEnd: number): number;
  /** Bit-unshuffle of one block (`size` 1, 2 or 4; `nb` bytes per plane, a multiple of 16). */
  unshuffle(size: 1 | 2 | 4, src: number, dst: number, nb: number): void;
  /** Grows memory to at least `bytes`; false when that exceeds the module's 1 GiB bound. */
  reserve(bytes: number): boolean;
  /** A byte view of the whole memory (renewed after `reserve`). */
  bytes(): Uint8Array;
}

let compiled: WebAssembly.Module | null | undefined;

/**
 * Compiles (once per thread) and instantiates the codec. Returns undefined when the engine has
 * no WebAssembly SIMD; callers then use the JavaScript decoders.
 */
export function createWasmCodec(): WasmCodec | undefined {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(assembleWat(codecModuleText()) as Uint8Array<ArrayBuffer>);
    } catch {
      compiled = null;
    }
  }
  if (compiled === null) return undefined;
  const ex = new WebAssembly.Instance(compiled).exports as unknown as CodecExports;
  const memory = ex.memory;
  let view = new Uint8Array(memory.buffer);
  const unshuffles = { 1: ex.unshuffle1, 2: ex.unshuffle2, 4: ex.unshuffle4 } as const;
  return {
    lz4: ex.lz4,
    unshuffle: (size, src, dst, nb) => unshuffles[size](src, dst, nb),
    reserve(bytes) {
      const have = memory.buffer.byteLength;
      if (bytes > have) {
        if (bytes > MAX_PAGES * 65536) return false;
        try {
          memory.grow(Math.ceil((bytes - have) / 65536));
        } catch {
          return false;
        }
      }
      if (view.buffer !== memory.buffer) view = new Uint8Array(memory.buffer);
      return true;
    },
    bytes() {
      if (view.buffer !== memory.buffer) view = new Uint8Array(memory.buffer);
      return view;
    },
  };
}
