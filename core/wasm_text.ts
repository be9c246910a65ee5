/**
 * A small assembler for the WebAssembly text format (the subset our hand-written modules use), so
 * that a module can be kept as readable WAT in the source and turned into bytes at load time
 * without any external toolchain.
 *
 * Supported: one `(memory (export "name") min max)`, `(func (export "name") (param $p T)*
 * (result T)? (local $l T)* instr*)` with types `i32 i64 v128`, and flat (not folded)
 * instructions: `block $l` / `loop $l` / `if` ... `else` ... `end` (no block results), `br`/`br_if`
 * to a label, `local.get/set/tee $x`, `i32.const N`, `i64.const N`, `v128.const i32x4 a b c d`,
 * loads and stores with optional `offset=N align=N`, `i8x16.shuffle` with 16 lane indices, the
 * integer and SIMD operators listed in {@link OPCODES}, and `memory.copy` / `memory.fill`; active
 * data segments `(data (i32.const N) "bytes")` (escapes `\hh`, `\n`, `\t`, `\\`).
 * Comments: `;; to end of line`. Errors name the offending token.
 *
 * @module
 */

type Imm = "none" | "local" | "label" | "i32" | "i64" | "mem" | "v128" | "shuffle" | "block";

interface OpInfo {
  code: number[];
  imm: Imm;
  /** Natural alignment (log2) of a memory access. */
  align?: number;
}

const SIMD = 0xfd;

function simd(op: number, imm: Imm = "none", align?: number): OpInfo {
  return { code: [SIMD, ...uleb(op)], imm, align };
}

/** Opcodes the assembler knows, by instruction name. */
export const OPCODES: Readonly<Record<string, OpInfo>> = {
  "unreachable": { code: [0x00], imm: "none" },
  "nop": { code: [0x01], imm: "none" },
  "block": { code: [0x02], imm: "block" },
  "loop": { code: [0x03], imm: "block" },
  "if": { code: [0x04], imm: "block" },
  "else": { code: [0x05], imm: "none" },
  "end": { code: [0x0b], imm: "none" },
  "br": { code: [0x0c], imm: "label" },
  "br_if": { code: [0x0d], imm: "label" },
  "return": { code: [0x0f], imm: "none" },
  "drop": { code: [0x1a], imm: "none" },
  "select": { code: [0x1b], imm: "none" },
  "local.get": { code: [0x20], imm: "local" },
  "local.set": { code: [0x21], imm: "local" },
  "local.tee": { code: [0x22], imm: "local" },
  "i32.load": { code: [0x28], imm: "mem", align: 2 },
  "i64.load": { code: [0x29], imm: "mem", align: 3 },
  "i32.load8_u": { code: [0x2d], imm: "mem", align: 0 },
  "i32.load16_u": { code: [0x2f], imm: "mem", align: 1 },
  "i32.store": { code: [0x36], imm: "mem", align: 2 },
  "i64.store": { code: [0x37], imm: "mem", align: 3 },
  "i32.store8": { code: [0x3a], imm: "mem", align: 0 },
  "i32.const": { code: [0x41], imm: "i32" },
  "i64.const": { code: [0x42], imm: "i64" },
  "i32.eqz": { code: [0x45], imm: "none" },
  "i32.eq": { code: [0x46], imm: "none" },
  "i32.ne": { code: [0x47], imm: "none" },
  "i32.lt_s": { code: [0x48], imm: "none" },
  "i32.lt_u": { code: [0x49], imm: "none" },
  "i32.gt_s": { code: [0x4a], imm: "none" },
  "i32.gt_u": { code: [0x4b], imm: "none" },
  "i32.le_u": { code: [0x4d], imm: "none" },
  "i32.ge_u": { code: [0x4f], imm: "none" },
  "i32.add": { code: [0x6a], imm: "none" },
  "i32.sub": { code: [0x6b], imm: "none" },
  "i32.mul": { code: [0x6c], imm: "none" },
  "i32.and": { code: [0x71], imm: "none" },
  "i32.or": { code: [0x72], imm: "none" },
  "i32.xor": { code: [0x73], imm: "none" },
  "i32.shl": { code: [0x74], imm: "none" },
  "i32.shr_s": { code: [0x75], imm: "none" },
  "i32.shr_u": { code: [0x76], imm: "none" },
  "memory.copy": { code: [0xfc, 10, 0, 0], imm: "none" },
  "memory.fill": { code: [0xfc, 11, 0], imm: "none" },
  "v128.load": simd(0x00, "mem", 4),
  "v128.store": simd(0x0b, "mem", 4),
  "v128.const": simd(0x0c, "v128"),
  "i8x16.shuffle": simd(0x0d, "shuffle"),
  "i8x16.swizzle": simd(0x0e),
  "i8x16.relaxed_swizzle": simd(0x100),
  "i8x16.splat": simd(0x0f),
  "v128.not": simd(0x4d),
  "v128.and": simd(0x4e),
  "v128.andnot": simd(0x4f),
  "v128.or": simd(0x50),
  "v128.xor": simd(0x51),
  "v128.any_true": simd(0x53),
  "i16x8.extend_low_i8x16_u": simd(0x89),
  "i16x8.extend_high_i8x16_u": simd(0x8a),
  "i32x4.extend_low_i16x8_u": simd(0xa9),
  "i32x4.extend_high_i16x8_u": simd(0xaa),
  "i64x2.shl": simd(0xcb),
  "i64x2.shr_u": simd(0xcd),
};

const TYPES: Readonly<Record<string, number>> = { i32: 0x7f, i64: 0x7e, v128: 0x7b };

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a bigint. */
function sleb(value: bigint): number[] {
  const out: number[] = [];
  let v = value;
  while (true) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

type Sexp = string | Sexp[];

/** Thrown for text the assembler cannot turn into a module. */
export class WatError extends Error {
  /** Creates an error naming the problem. */
  constructor(message: string) {
    super(message);
    this.name = "WatError";
  }
}

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const re = /;;[^\n]*|\s+|\(|\)|"[^"]*"|[^\s()"]+/g;
  for (const m of text.matchAll(re)) {
    const t = m[0];
    if (t.startsWith(";;") || /^\s+$/.test(t)) continue;
    tokens.push(t);
  }
  return tokens;
}

function parse(tokens: string[]): Sexp[] {
  const stack: Sexp[][] = [[]];
  for (const t of tokens) {
    if (t === "(") stack.push([]);
    else if (t === ")") {
      const done = stack.pop();
      if (done === undefined || stack.length === 0) throw new WatError("unbalanced ')'");
      stack[stack.length - 1].push(done);
    } else stack[stack.length - 1].push(t);
  }
  if (stack.length !== 1) throw new WatError("unbalanced '('");
  return stack[0];
}

/** The bytes of a data string: `\hh` hex escapes, `\n`, `\t`, `\\`, other characters as UTF-8. */
function dataBytes(s: Sexp | undefined): number[] {
  const text = str(s);
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== "\\") {
      out.push(...new TextEncoder().encode(c));
      continue;
    }
    const next = text[++i];
    if (next === "n") out.push(10);
    else if (next === "t") out.push(9);
    else if (next === "\\") out.push(92);
    else if (/^[0-9a-fA-F]{2}$/.test(text.slice(i, i + 2))) {
      out.push(parseInt(text.slice(i, i + 2), 16));
      i++;
    } else throw new WatError(`data: bad escape \\${text.slice(i, i + 2)}`);
  }
  return out;
}

function str(s: Sexp | undefined): string {
  if (typeof s !== "string" || !s.startsWith('"')) throw new WatError(`expected a string`);
  return s.slice(1, -1);
}

function nameBytes(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...uleb(b.length), ...b];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function intOf(token: string | undefined, what: string): bigint {
  if (token === undefined) throw new WatError(`${what}: missing number`);
  try {
    return BigInt(token.replaceAll("_", ""));
  } catch {
    throw new WatError(`${what}: bad number ${token}`);
  }
}

interface Func {
  exportName?: string;
  params: number[];
  results: number[];
  locals: number[];
  body: number[];
}

function assembleFunc(form: Sexp[]): Func {
  const func: Func = { params: [], results: [], locals: [], body: [] };
  const localIndex = new Map<string, number>();
  let i = 1;
  if (typeof form[i] === "string" && (form[i] as string).startsWith("$")) i++;
  const instrs: string[] = [];
  for (; i < form.length; i++) {
    const item = form[i];
    if (typeof item === "string") {
      instrs.push(item);
      continue;
    }
    const [head, ...rest] = item;
    if (head === "export") func.exportName = str(rest[0]);
    else if (head === "param" || head === "local") {
      const name = rest[0] as string;
      const type = TYPES[rest[1] as string];
      if (type === undefined) throw new WatError(`${head} ${name}: unknown type ${rest[1]}`);
      if (localIndex.has(name)) throw new WatError(`duplicate local ${name}`);
      localIndex.set(name, func.params.length + func.locals.length);
      (head === "param" ? func.params : func.locals).push(type);
    } else if (head === "result") func.results.push(TYPES[rest[0] as string]);
    else throw new WatError(`unexpected (${head} ...) in func`);
  }
  const labels: (string | undefined)[] = [];
  const out = func.body;
  for (let k = 0; k < instrs.length; k++) {
    const op = instrs[k];
    const info = OPCODES[op];
    if (info === undefined) throw new WatError(`unknown instruction ${op}`);
    out.push(...info.code);
    switch (info.imm) {
      case "none":
        if (op === "end") {
          if (labels.length === 0) throw new WatError("'end' without a block");
          labels.pop();
        }
        break;
      case "block": {
        const next = instrs[k + 1];
        if (next?.startsWith("$")) {
          labels.push(next);
          k++;
        } else labels.push(undefined);
        out.push(0x40);
        break;
      }
      case "label": {
        const name = instrs[++k];
        const depth = labels.lastIndexOf(name);
        if (depth < 0) throw new WatError(`${op}: unknown label ${name}`);
        out.push(...uleb(labels.length - 1 - depth));
        break;
      }
      case "local": {
        const name = instrs[++k];
        const index = localIndex.get(name);
        if (index === undefined) throw new WatError(`${op}: unknown local ${name}`);
        out.push(...uleb(index));
        break;
      }
      case "i32":
        out.push(...sleb(BigInt.asIntN(32, intOf(instrs[++k], op))));
        break;
      case "i64":
        out.push(...sleb(BigInt.asIntN(64, intOf(instrs[++k], op))));
        break;
      case "mem": {
        let offset = 0;
        let align = info.align!;
        while (/^(offset|align)=/.test(instrs[k + 1] ?? "")) {
          const [key, value] = instrs[++k].split("=");
          if (key === "offset") offset = Number(value);
          else align = Math.log2(Number(value));
        }
        out.push(...uleb(align), ...uleb(offset));
        break;
      }
      case "v128": {
        if (instrs[++k] !== "i32x4") throw new WatError("v128.const: only i32x4 is supported");
        const b = new Uint8Array(16);
        const view = new DataView(b.buffer);
        for (let lane = 0; lane < 4; lane++) {
          view.setInt32(lane * 4, Number(BigInt.asIntN(32, intOf(instrs[++k], op))), true);
        }
        out.push(...b);
        break;
      }
      case "shuffle":
        for (let lane = 0; lane < 16; lane++) {
          const v = Number(intOf(instrs[++k], op));
          if (v < 0 || v > 31) throw new WatError(`i8x16.shuffle: lane ${v} out of range`);
          out.push(v);
        }
        break;
    }
  }
  if (labels.length !== 0) throw new WatError("block without 'end'");
  out.push(0x0b);
  return func;
}

/**
 * Assembles a module from text (see the module doc for the subset). Throws {@link WatError} on
 * text outside the subset; the engine validates the result when it is compiled.
 */
export function assembleWat(text: string): Uint8Array {
  const top = parse(tokenize(text));
  const module = top[0];
  if (!Array.isArray(module) || module[0] !== "module") throw new WatError("expected (module ...)");
  const funcs: Func[] = [];
  let memory: { exportName?: string; min: number; max?: number } | undefined;
  const data: { offset: number; bytes: number[] }[] = [];
  for (const form of module.slice(1)) {
    if (!Array.isArray(form)) throw new WatError(`unexpected ${form} in module`);
    if (form[0] === "func") funcs.push(assembleFunc(form));
    else if (form[0] === "memory") {
      const rest = form.slice(1);
      let exportName: string | undefined;
      if (Array.isArray(rest[0]) && rest[0][0] === "export") exportName = str(rest.shift()![1]);
      memory = {
        exportName,
        min: Number(rest[0]),
        max: rest[1] === undefined ? undefined : Number(rest[1]),
      };
    } else if (form[0] === "data") {
      const at = form[1];
      if (!Array.isArray(at) || at[0] !== "i32.const" || form.length !== 3) {
        throw new WatError('data: expected (data (i32.const N) "bytes")');
      }
      data.push({ offset: Number(intOf(at[1] as string, "data")), bytes: dataBytes(form[2]) });
    } else throw new WatError(`unsupported module field ${form[0]}`);
  }
  const typeKeys: string[] = [];
  const typeOf = funcs.map((f) => {
    const key = JSON.stringify([f.params, f.results]);
    let index = typeKeys.indexOf(key);
    if (index < 0) index = typeKeys.push(key) - 1;
    return index;
  });
  const types = typeKeys.map((key) => {
    const [params, results] = JSON.parse(key) as [number[], number[]];
    return [0x60, ...vec(params.map((p) => [p])), ...vec(results.map((r) => [r]))];
  });
  const exports: number[][] = [];
  if (memory?.exportName !== undefined) exports.push([...nameBytes(memory.exportName), 0x02, 0]);
  funcs.forEach((f, i) => {
    if (f.exportName !== undefined) exports.push([...nameBytes(f.exportName), 0x00, ...uleb(i)]);
  });
  const bodies = funcs.map((f) => {
    const groups: number[][] = [];
    for (const t of f.locals) {
      const last = groups[groups.length - 1];
      if (last !== undefined && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    const body = [...vec(groups.map(([n, t]) => [...uleb(n), t])), ...f.body];
    return [...uleb(body.length), ...body];
  });
  const parts: number[][] = [[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]];
  parts.push(section(1, vec(types)));
  parts.push(section(3, vec(typeOf.map((t) => uleb(t)))));
  if (memory !== undefined) {
    const limits = memory.max === undefined
      ? [0x00, ...uleb(memory.min)]
      : [0x01, ...uleb(memory.min), ...uleb(memory.max)];
    parts.push(section(5, vec([limits])));
  }
  parts.push(section(7, vec(exports)));
  parts.push(section(10, vec(bodies)));
  if (data.length > 0) {
    if (memory === undefined) throw new WatError("data without a memory");
    // Active segments of memory 0: flags 0, offset expression `i32.const N end`, the bytes.
    parts.push(section(
      11,
      vec(
        data.map((
          d,
        ) => [0x00, 0x41, ...sleb(BigInt(d.offset)), 0x0b, ...vec(d.bytes.map((b) => [b]))]),
      ),
    ));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
