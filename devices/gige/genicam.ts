/**
 * GenICam GenApi node map: the feature graph of a device description evaluated on demand over a
 * {@link RegisterPort}.
 *
 * Features: Integer, Float, Enumeration (+EnumEntry), Boolean, Command, String. Registers:
 * IntReg, MaskedIntReg, FloatReg, StringReg, StructReg/StructEntry. Formulas: SwissKnife,
 * IntSwissKnife, Converter, IntConverter. Indirections: pValue, pMin, pMax, pInc, pIsAvailable,
 * pIsImplemented, pIsLocked, pAddress, pIndex (+Offset/pOffset), pLength, ValueIndexed.
 * Endianness and bit numbering as declared (BigEndian: bit 0 = MSB). Caching: registers marked
 * NoCache or with a PollingTime are always read; others are cached until any write through this
 * map (which invalidates every cached register: this honours pInvalidator and selectors without
 * tracking them), and a WriteThrough register keeps the value just written.
 *
 * A node of any other type used as a value is a {@link GenicamError} naming the node and its type.
 *
 * @module
 */

import { type Formula, parseFormula } from "./formula.ts";
import { parseXml, type XmlElement, XmlError } from "./xml.ts";
import { errorMessage } from "../../core/errors.ts";

/** Register access used by a node map (addresses and lengths as the description gives them). */
export interface RegisterPort {
  /** Reads `length` bytes at `address`. */
  readMemory(address: number, length: number): Promise<Uint8Array>;
  /** Writes bytes at `address`. */
  writeMemory(address: number, data: Uint8Array): Promise<void>;
  /** Reads a 32-bit register as a number (GigE READREG; network order whatever the endianness). */
  readRegister?(address: number): Promise<number>;
  /** Writes a 32-bit register (GigE WRITEREG). */
  writeRegister?(address: number, value: number): Promise<void>;
}

/** A description or feature problem (message names the node). */
export class GenicamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GenicamError";
  }
}

/** A feature's value as an operator sees it. */
export type FeatureValue = number | string | boolean;

/** Numeric range of a feature. */
export interface FeatureRange {
  min: number;
  max: number;
  inc?: number;
}

const FEATURE_KINDS = new Set(["Integer", "Float", "Enumeration", "Boolean", "Command", "String"]);
const NUMERIC_KINDS = new Set([
  "Integer",
  "Float",
  "Enumeration",
  "Boolean",
  "IntReg",
  "MaskedIntReg",
  "FloatReg",
  "StructEntry",
  "IntSwissKnife",
  "SwissKnife",
  "IntConverter",
  "Converter",
  "Command",
]);

interface Node {
  name: string;
  kind: string;
  el: XmlElement;
  /** The StructReg holding a StructEntry. */
  parent?: XmlElement;
}

function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

function parseNumber(text: string, where: string): number {
  const t = text.trim();
  const v = /^[-+]?0[xX][0-9a-fA-F]+$/.test(t)
    ? (t.startsWith("-") ? -Number(BigInt(t.slice(1))) : Number(BigInt(t.replace("+", ""))))
    : Number(t);
  if (t === "" || !Number.isFinite(v)) throw new GenicamError(`${where}: "${t}" is not a number`);
  return v;
}

/** A GenApi node map over a register port. */
export class NodeMap {
  #nodes = new Map<string, Node>();
  #port: RegisterPort;
  #locals = new Map<string, FeatureValue>();
  #cache = new Map<string, bigint | Uint8Array>();
  #formulas = new Map<string, Formula>();
  #evaluating = new Set<string>();
  /** Schema version of the description, e.g. `1.0.1`. */
  readonly schemaVersion: string;

  /** Builds the map from a parsed `<RegisterDescription>`. */
  constructor(root: XmlElement, port: RegisterPort) {
    if (root.name.replace(/^.*:/, "") !== "RegisterDescription") {
      throw new GenicamError(`root element is <${root.name}>, not <RegisterDescription>`);
    }
    this.#port = port;
    this.schemaVersion = [
      root.attributes.SchemaMajorVersion ?? "?",
      root.attributes.SchemaMinorVersion ?? "?",
      root.attributes.SchemaSubMinorVersion ?? "?",
    ].join(".");
    const add = (el: XmlElement) => {
      const kind = el.name.replace(/^.*:/, "");
      if (kind === "Group") {
        el.children.forEach(add);
        return;
      }
      const name = el.attributes.Name;
      if (name === undefined) return;
      this.#nodes.set(name, { name, kind, el });
      if (kind === "StructReg") {
        for (const entry of childrenNamed(el, "StructEntry")) {
          const en = entry.attributes.Name;
          if (en !== undefined) {
            this.#nodes.set(en, { name: en, kind: "StructEntry", el: entry, parent: el });
          }
        }
      }
    };
    root.children.forEach(add);
  }

  /** Parses description text; a malformed document is a {@link GenicamError}. */
  static parse(text: string, port: RegisterPort): NodeMap {
    let root: XmlElement;
    try {
      root = parseXml(text);
    } catch (err) {
      if (err instanceof XmlError) {
        throw new GenicamError(`GenICam description does not parse: ${err.message}`);
      }
      throw err;
    }
    return new NodeMap(root, port);
  }

  /** Whether a node of that name exists. */
  has(name: string): boolean {
    return this.#nodes.has(name);
  }

  /** The node type (`Integer`, `IntReg`, ...) of a node; throws when missing. */
  kind(name: string): string {
    return this.#node(name).kind;
  }

  /** Names of all nodes. */
  names(): string[] {
    return [...this.#nodes.keys()];
  }

  /** Drops every cached register value. */
  invalidate(): void {
    this.#cache.clear();
  }

  #node(name: string): Node {
    const n = this.#nodes.get(name);
    if (n === undefined) {
      throw new GenicamError(`feature ${name} does not exist in the description`);
    }
    return n;
  }

  /** Text of a child of the node, or of its StructReg for register properties. */
  #prop(n: Node, tag: string): string | undefined {
    const c = child(n.el, tag) ?? (n.parent !== undefined ? child(n.parent, tag) : undefined);
    return c?.text.trim();
  }

  async #guard<T>(name: string, f: () => Promise<T>): Promise<T> {
    if (this.#evaluating.has(name)) throw new GenicamError(`node ${name} refers to itself`);
    this.#evaluating.add(name);
    try {
      return await f();
    } finally {
      this.#evaluating.delete(name);
    }
  }

  /** A number given as `<Tag>` literal or `<pTag>` node reference, or undefined. */
  async #numberOrRef(n: Node, tag: string): Promise<number | undefined> {
    const lit = this.#prop(n, tag);
    if (lit !== undefined) return parseNumber(lit, `${n.name}.${tag}`);
    const ref = this.#prop(n, "p" + tag);
    if (ref !== undefined) return await this.getNumber(ref);
    return undefined;
  }

  async #flag(n: Node, tag: string, fallback: boolean): Promise<boolean> {
    const ref = this.#prop(n, tag);
    if (ref === undefined) return fallback;
    return (await this.getNumber(ref)) !== 0;
  }

  /** Whether the node is implemented and available now (pIsImplemented, pIsAvailable). */
  async isAvailable(name: string): Promise<boolean> {
    const n = this.#node(name);
    return await this.#flag(n, "pIsImplemented", true) && await this.#flag(n, "pIsAvailable", true);
  }

  /** Whether the feature can be written now. */
  async isWritable(name: string): Promise<boolean> {
    const n = this.#node(name);
    if (!await this.isAvailable(name)) return false;
    if (await this.#flag(n, "pIsLocked", false)) return false;
    const imposed = this.#prop(n, "ImposedAccessMode");
    if (imposed === "RO") return false;
    const access = this.#prop(n, "AccessMode");
    if (access === "RO") return false;
    const pv = this.#prop(n, "pValue");
    if (pv !== undefined && this.#nodes.has(pv)) return await this.isWritable(pv);
    if (n.kind === "IntSwissKnife" || n.kind === "SwissKnife") return false;
    if (["IntReg", "MaskedIntReg", "FloatReg", "StringReg", "StructEntry"].includes(n.kind)) {
      return access === "RW" || access === "WO";
    }
    return true;
  }

  async #checkAvailable(n: Node): Promise<void> {
    if (!await this.#flag(n, "pIsImplemented", true)) {
      throw new GenicamError(`feature ${n.name} is not implemented on this device`);
    }
    if (!await this.#flag(n, "pIsAvailable", true)) {
      throw new GenicamError(`feature ${n.name} is not available now`);
    }
  }

  // ------------------------------------------------------------------ registers

  async #address(n: Node): Promise<number> {
    let address = 0;
    const els = [...(n.parent ? n.parent.children : []), ...n.el.children];
    for (const c of els) {
      if (c.name === "Address") address += parseNumber(c.text, `${n.name}.Address`);
      else if (c.name === "pAddress") address += await this.getNumber(c.text.trim());
      else if (c.name === "IntSwissKnife") {
        address += await this.#formulaValue(
          { name: `${n.name}/IntSwissKnife`, kind: "IntSwissKnife", el: c },
          true,
        );
      } else if (c.name === "pIndex") {
        const index = await this.getNumber(c.text.trim());
        let offset: number;
        if (c.attributes.Offset !== undefined) {
          offset = parseNumber(c.attributes.Offset, `${n.name}.pIndex.Offset`);
        } else if (c.attributes.pOffset !== undefined) {
          offset = await this.getNumber(c.attributes.pOffset);
        } else offset = await this.#length(n);
        address += index * offset;
      }
    }
    return address;
  }

  async #length(n: Node): Promise<number> {
    return (await this.#numberOrRef(n, "Length")) ?? 4;
  }

  #cacheable(n: Node): boolean {
    const c = this.#prop(n, "Cachable");
    return c !== "NoCache" && this.#prop(n, "PollingTime") === undefined;
  }

  #bigEndian(n: Node): boolean {
    return this.#prop(n, "Endianess") === "BigEndian";
  }

  /** The register's whole value as an unsigned big integer. */
  async #readRaw(n: Node, address: number, length: number): Promise<bigint> {
    const key = `${address}:${length}`;
    const cached = this.#cache.get(key);
    if (typeof cached === "bigint") return cached;
    let raw: bigint;
    if (length === 4 && this.#port.readRegister !== undefined) {
      raw = BigInt(await this.#port.readRegister(address));
    } else {
      const bytes = await this.#port.readMemory(address, length);
      raw = 0n;
      const big = this.#bigEndian(n);
      for (let i = 0; i < length; i++) {
        raw = (raw << 8n) | BigInt(bytes[big ? i : length - 1 - i]);
      }
    }
    if (this.#cacheable(n)) this.#cache.set(key, raw);
    return raw;
  }

  async #writeRaw(n: Node, address: number, length: number, raw: bigint): Promise<void> {
    raw = BigInt.asUintN(8 * length, raw);
    if (length === 4 && this.#port.writeRegister !== undefined) {
      await this.#port.writeRegister(address, Number(raw));
    } else {
      const bytes = new Uint8Array(length);
      const big = this.#bigEndian(n);
      let v = raw;
      for (let i = 0; i < length; i++) {
        bytes[big ? length - 1 - i : i] = Number(v & 0xffn);
        v >>= 8n;
      }
      await this.#port.writeMemory(address, bytes);
    }
    this.#cache.clear();
    const mode = this.#prop(n, "Cachable") ?? "WriteThrough";
    if (mode === "WriteThrough" && this.#cacheable(n)) this.#cache.set(`${address}:${length}`, raw);
  }

  /** The value-bit positions [lsb, msb] of a masked field, or undefined for the whole register. */
  #field(n: Node, length: number): [number, number] | undefined {
    const bit = this.#prop(n, "Bit");
    let lsb: number;
    let msb: number;
    if (bit !== undefined) {
      lsb = msb = parseNumber(bit, `${n.name}.Bit`);
    } else {
      const l = this.#prop(n, "LSB");
      const m = this.#prop(n, "MSB");
      if (l === undefined && m === undefined) return undefined;
      const big = this.#bigEndian(n);
      lsb = l !== undefined ? parseNumber(l, `${n.name}.LSB`) : (big ? 8 * length - 1 : 0);
      msb = m !== undefined ? parseNumber(m, `${n.name}.MSB`) : (big ? 0 : 8 * length - 1);
    }
    if (this.#bigEndian(n)) {
      lsb = 8 * length - 1 - lsb;
      msb = 8 * length - 1 - msb;
    }
    if (lsb > msb || lsb < 0 || msb >= 8 * length) {
      throw new GenicamError(
        `${n.name}: bit field ${lsb}..${msb} outside a ${length}-byte register`,
      );
    }
    return [lsb, msb];
  }

  async #intRegValue(n: Node): Promise<number> {
    const address = await this.#address(n);
    const length = await this.#length(n);
    if (length < 1 || length > 8) throw new GenicamError(`${n.name}: Length ${length} not 1..8`);
    const raw = await this.#readRaw(n, address, length);
    const field = n.kind === "IntReg" ? undefined : this.#field(n, length);
    const [lsb, msb] = field ?? [0, 8 * length - 1];
    const width = BigInt(msb - lsb + 1);
    let v = (raw >> BigInt(lsb)) & ((1n << width) - 1n);
    if (this.#prop(n, "Sign") === "Signed") v = BigInt.asIntN(Number(width), v);
    return Number(v);
  }

  async #intRegWrite(n: Node, value: number): Promise<void> {
    const address = await this.#address(n);
    const length = await this.#length(n);
    const field = n.kind === "IntReg" ? undefined : this.#field(n, length);
    if (!Number.isInteger(value)) throw new GenicamError(`${n.name}: ${value} is not an integer`);
    if (field === undefined) {
      await this.#writeRaw(n, address, length, BigInt(value));
      return;
    }
    const [lsb, msb] = field;
    const width = BigInt(msb - lsb + 1);
    const mask = ((1n << width) - 1n) << BigInt(lsb);
    const signed = this.#prop(n, "Sign") === "Signed";
    const lo = signed ? -(1n << (width - 1n)) : 0n;
    const hi = signed ? (1n << (width - 1n)) - 1n : (1n << width) - 1n;
    const v = BigInt(value);
    if (v < lo || v > hi) {
      throw new GenicamError(`${n.name}: ${value} does not fit its ${width}-bit field`);
    }
    const current = await this.#readRaw(n, address, length);
    await this.#writeRaw(n, address, length, (current & ~mask) | ((v << BigInt(lsb)) & mask));
  }

  async #floatRegValue(n: Node): Promise<number> {
    const address = await this.#address(n);
    const length = await this.#length(n);
    if (length !== 4 && length !== 8) {
      throw new GenicamError(`${n.name}: FloatReg Length ${length}`);
    }
    const raw = await this.#readRaw(n, address, length);
    const dv = new DataView(new ArrayBuffer(8));
    if (length === 4) {
      dv.setUint32(0, Number(raw));
      return dv.getFloat32(0);
    }
    dv.setBigUint64(0, raw);
    return dv.getFloat64(0);
  }

  async #floatRegWrite(n: Node, value: number): Promise<void> {
    const address = await this.#address(n);
    const length = await this.#length(n);
    const dv = new DataView(new ArrayBuffer(8));
    let raw: bigint;
    if (length === 4) {
      dv.setFloat32(0, value);
      raw = BigInt(dv.getUint32(0));
    } else {
      dv.setFloat64(0, value);
      raw = dv.getBigUint64(0);
    }
    await this.#writeRaw(n, address, length, raw);
  }

  // ------------------------------------------------------------------ formulas

  #formula(n: Node, tag: string): Formula {
    const key = `${n.name}\u0000${tag}\u0000${n.el.line}`;
    let f = this.#formulas.get(key);
    if (f === undefined) {
      const text = this.#prop(n, tag);
      if (text === undefined) throw new GenicamError(`${n.name} has no <${tag}>`);
      try {
        f = parseFormula(text);
      } catch (err) {
        throw new GenicamError(`${n.name}: ${errorMessage(err)}`);
      }
      this.#formulas.set(key, f);
    }
    return f;
  }

  /** Values of pVariable, Constant and Expression children for a formula. */
  async #variables(n: Node, integer: boolean): Promise<Map<string, number>> {
    const vars = new Map<string, number>();
    for (const c of n.el.children) {
      const vn = c.attributes.Name;
      if (vn === undefined) continue;
      if (c.name === "pVariable") vars.set(vn, await this.getNumber(c.text.trim()));
      else if (c.name === "Constant") vars.set(vn, parseNumber(c.text, `${n.name}.${vn}`));
    }
    for (const c of n.el.children) {
      if (c.name !== "Expression" || c.attributes.Name === undefined) continue;
      let f: Formula;
      try {
        f = parseFormula(c.text);
      } catch (err) {
        throw new GenicamError(`${n.name}: ${errorMessage(err)}`);
      }
      vars.set(c.attributes.Name, f.evaluate(this.#lookup(n, vars), integer));
    }
    return vars;
  }

  #lookup(n: Node, vars: Map<string, number>) {
    return (name: string) => {
      const v = vars.get(name);
      if (v === undefined) {
        throw new GenicamError(`${n.name}: formula uses unknown variable ${name}`);
      }
      return v;
    };
  }

  async #formulaValue(n: Node, integer: boolean): Promise<number> {
    const vars = await this.#variables(n, integer);
    try {
      return this.#formula(n, "Formula").evaluate(this.#lookup(n, vars), integer);
    } catch (err) {
      if (err instanceof GenicamError) throw err;
      throw new GenicamError(`${n.name}: ${errorMessage(err)}`);
    }
  }

  async #converterFrom(n: Node, to: number): Promise<number> {
    const integer = n.kind === "IntConverter";
    const vars = await this.#variables(n, integer);
    vars.set("TO", to);
    return this.#formula(n, "FormulaFrom").evaluate(this.#lookup(n, vars), integer);
  }

  async #converterTo(n: Node, from: number): Promise<number> {
    const integer = n.kind === "IntConverter";
    const vars = await this.#variables(n, integer);
    vars.set("FROM", from);
    return this.#formula(n, "FormulaTo").evaluate(this.#lookup(n, vars), integer);
  }

  // ------------------------------------------------------------------ values

  #pValue(n: Node): string | undefined {
    return this.#prop(n, "pValue");
  }

  /** The selected `ValueIndexed`/`pValueIndexed` of an indexed Integer/Float, or undefined. */
  async #indexed(n: Node): Promise<number | undefined> {
    const pIndex = child(n.el, "pIndex");
    if (
      pIndex === undefined || ["IntReg", "MaskedIntReg", "FloatReg", "StringReg"].includes(n.kind)
    ) {
      return undefined;
    }
    const index = await this.getNumber(pIndex.text.trim());
    for (const c of n.el.children) {
      if (c.attributes.Index === undefined) continue;
      if (parseNumber(c.attributes.Index, `${n.name}.Index`) !== index) continue;
      if (c.name === "ValueIndexed") return parseNumber(c.text, `${n.name}.ValueIndexed`);
      if (c.name === "pValueIndexed") return await this.getNumber(c.text.trim());
    }
    const def = await this.#numberOrRef(n, "ValueDefault");
    if (def === undefined) throw new GenicamError(`${n.name}: no value for index ${index}`);
    return def;
  }

  /** Numeric value of any numeric node (an Enumeration gives its integer value). */
  getNumber(name: string): Promise<number> {
    return this.#guard(name, async () => {
      const n = this.#node(name);
      switch (n.kind) {
        case "Integer":
        case "Float":
        case "Enumeration":
        case "Command": {
          const idx = await this.#indexed(n);
          if (idx !== undefined) return idx;
          const pv = this.#pValue(n);
          if (pv !== undefined) return await this.getNumber(pv);
          const local = this.#locals.get(name);
          if (typeof local === "number") return local;
          const v = this.#prop(n, "Value");
          if (v !== undefined) return parseNumber(v, `${name}.Value`);
          if (n.kind === "Enumeration") {
            throw new GenicamError(`enumeration ${name} has neither pValue nor Value`);
          }
          throw new GenicamError(`${n.kind} ${name} has no value (no pValue, Value or index)`);
        }
        case "Boolean": {
          const raw = await this.#booleanRaw(n);
          return raw === await this.#onValue(n) ? 1 : 0;
        }
        case "IntReg":
        case "MaskedIntReg":
        case "StructEntry":
          return await this.#intRegValue(n);
        case "FloatReg":
          return await this.#floatRegValue(n);
        case "IntSwissKnife":
          return await this.#formulaValue(n, true);
        case "SwissKnife":
          return await this.#formulaValue(n, false);
        case "IntConverter":
        case "Converter": {
          const pv = this.#pValue(n);
          if (pv === undefined) throw new GenicamError(`${n.kind} ${name} has no pValue`);
          return await this.#converterFrom(n, await this.getNumber(pv));
        }
        default:
          throw new GenicamError(
            `node ${name} is of type ${n.kind}, which this GenICam evaluator does not support as a value`,
          );
      }
    });
  }

  async #onValue(n: Node): Promise<number> {
    return (await this.#numberOrRef(n, "OnValue")) ?? 1;
  }

  async #offValue(n: Node): Promise<number> {
    return (await this.#numberOrRef(n, "OffValue")) ?? 0;
  }

  async #booleanRaw(n: Node): Promise<number> {
    const pv = this.#pValue(n);
    if (pv !== undefined) return await this.getNumber(pv);
    const local = this.#locals.get(n.name);
    if (typeof local === "number") return local;
    const v = this.#prop(n, "Value");
    if (v === undefined) throw new GenicamError(`Boolean ${n.name} has neither pValue nor Value`);
    return parseNumber(v, `${n.name}.Value`);
  }

  /** Writes a numeric value to any writable numeric node (no range check here). */
  setNumber(name: string, value: number): Promise<void> {
    return this.#guard(name, async () => {
      const n = this.#node(name);
      const access = this.#prop(n, "AccessMode");
      if (access === "RO" && n.kind !== "Integer" && n.kind !== "Float") {
        throw new GenicamError(`${name} is read-only`);
      }
      switch (n.kind) {
        case "Integer":
        case "Float":
        case "Enumeration":
        case "Command": {
          const pv = this.#pValue(n);
          if (pv !== undefined) return await this.setNumber(pv, value);
          if (child(n.el, "pIndex") !== undefined) {
            throw new GenicamError(`${name} is an indexed value and cannot be written`);
          }
          this.#locals.set(name, value);
          this.#cache.clear();
          return;
        }
        case "Boolean": {
          const raw = value !== 0 ? await this.#onValue(n) : await this.#offValue(n);
          const pv = this.#pValue(n);
          if (pv !== undefined) return await this.setNumber(pv, raw);
          this.#locals.set(name, raw);
          return;
        }
        case "IntReg":
        case "MaskedIntReg":
        case "StructEntry":
          return await this.#intRegWrite(n, value);
        case "FloatReg":
          return await this.#floatRegWrite(n, value);
        case "IntConverter":
        case "Converter": {
          const pv = this.#pValue(n);
          if (pv === undefined) throw new GenicamError(`${n.kind} ${name} has no pValue`);
          let raw = await this.#converterTo(n, value);
          if (this.#integerValued(pv)) raw = Math.round(raw);
          return await this.setNumber(pv, raw);
        }
        case "IntSwissKnife":
        case "SwissKnife":
          throw new GenicamError(`${name} is a ${n.kind} (computed, read-only)`);
        default:
          throw new GenicamError(
            `node ${name} is of type ${n.kind}, which this GenICam evaluator cannot write`,
          );
      }
    });
  }

  #integerValued(name: string): boolean {
    const n = this.#nodes.get(name);
    if (n === undefined) return false;
    if (
      [
        "Integer",
        "IntReg",
        "MaskedIntReg",
        "StructEntry",
        "IntSwissKnife",
        "IntConverter",
        "Enumeration",
      ].includes(n.kind)
    ) {
      return true;
    }
    return false;
  }

  /** Range of a numeric feature (Min/pMin, Max/pMax, Inc/pInc; converters map their target's). */
  range(name: string): Promise<FeatureRange> {
    return this.#guard(name + "#range", async () => {
      const n = this.#node(name);
      let min = await this.#numberOrRef(n, "Min");
      let max = await this.#numberOrRef(n, "Max");
      const inc = await this.#numberOrRef(n, "Inc");
      const pv = this.#pValue(n);
      if ((min === undefined || max === undefined) && pv !== undefined && this.#nodes.has(pv)) {
        const inner = await this.range(pv);
        if (n.kind === "Converter" || n.kind === "IntConverter") {
          let a = await this.#converterFrom(n, inner.min);
          let b = await this.#converterFrom(n, inner.max);
          if (a > b) [a, b] = [b, a];
          if (!Number.isFinite(a)) a = -Infinity;
          if (!Number.isFinite(b)) b = Infinity;
          min ??= a;
          max ??= b;
        } else {
          min ??= inner.min;
          max ??= inner.max;
        }
      }
      if (
        (min === undefined || max === undefined) &&
        ["MaskedIntReg", "StructEntry", "IntReg"].includes(n.kind)
      ) {
        const length = await this.#length(n);
        const field = n.kind === "IntReg" ? undefined : this.#field(n, length);
        const bits = field ? field[1] - field[0] + 1 : 8 * length;
        const signed = this.#prop(n, "Sign") === "Signed";
        min ??= signed ? -(2 ** (bits - 1)) : 0;
        max ??= signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
      }
      return { min: min ?? -Infinity, max: max ?? Infinity, inc };
    });
  }

  /** Enumeration entries that are implemented: name → value. */
  async enumEntries(name: string): Promise<Map<string, number>> {
    const n = this.#node(name);
    if (n.kind !== "Enumeration") {
      throw new GenicamError(`${name} is a ${n.kind}, not an Enumeration`);
    }
    const out = new Map<string, number>();
    for (const e of childrenNamed(n.el, "EnumEntry")) {
      const en = e.attributes.Name;
      if (en === undefined) continue;
      const entry: Node = { name: `${name}.${en}`, kind: "EnumEntry", el: e };
      if (!await this.#flag(entry, "pIsImplemented", true)) continue;
      const v = this.#prop(entry, "Value");
      if (v === undefined) throw new GenicamError(`EnumEntry ${en} of ${name} has no Value`);
      out.set(en, parseNumber(v, `${name}.${en}.Value`));
    }
    return out;
  }

  /** Unit of a feature (`<Unit>`, following pValue), or "". */
  unit(name: string): string {
    let n = this.#nodes.get(name);
    for (let depth = 0; n !== undefined && depth < 8; depth++) {
      const u = this.#prop(n, "Unit");
      if (u !== undefined) return u;
      const pv = this.#pValue(n);
      n = pv === undefined ? undefined : this.#nodes.get(pv);
    }
    return "";
  }

  /** A feature's value: number, enumeration entry name, boolean or text. */
  async get(name: string): Promise<FeatureValue> {
    const n = this.#node(name);
    await this.#checkAvailable(n);
    switch (n.kind) {
      case "Enumeration": {
        const v = await this.getNumber(name);
        for (const [en, ev] of await this.enumEntries(name)) if (ev === v) return en;
        throw new GenicamError(`enumeration ${name} reads ${v}, which matches no entry`);
      }
      case "Boolean":
        return (await this.getNumber(name)) !== 0;
      case "String":
      case "StringReg":
        return await this.getString(name);
      default:
        if (!NUMERIC_KINDS.has(n.kind)) {
          throw new GenicamError(
            `node ${name} is of type ${n.kind}, which this GenICam evaluator does not support as a value`,
          );
        }
        return await this.getNumber(name);
    }
  }

  /** Text of a String or StringReg node. */
  getString(name: string): Promise<string> {
    return this.#guard(name, async () => {
      const n = this.#node(name);
      if (n.kind === "String") {
        const pv = this.#pValue(n);
        if (pv !== undefined) return await this.getString(pv);
        const local = this.#locals.get(name);
        if (typeof local === "string") return local;
        return this.#prop(n, "Value") ?? "";
      }
      if (n.kind !== "StringReg") throw new GenicamError(`${name} is a ${n.kind}, not a string`);
      const address = await this.#address(n);
      const length = await this.#length(n);
      const bytes = await this.#port.readMemory(address, length);
      const end = bytes.indexOf(0);
      return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
    });
  }

  async #setString(n: Node, text: string): Promise<void> {
    if (n.kind === "String") {
      const pv = this.#pValue(n);
      if (pv !== undefined) return await this.#setString(this.#node(pv), text);
      this.#locals.set(n.name, text);
      return;
    }
    if (n.kind !== "StringReg") throw new GenicamError(`${n.name} is a ${n.kind}, not a string`);
    if (this.#prop(n, "AccessMode") === "RO") throw new GenicamError(`${n.name} is read-only`);
    const address = await this.#address(n);
    const length = await this.#length(n);
    const encoded = new TextEncoder().encode(text);
    if (encoded.length > length) {
      throw new GenicamError(`${n.name}: ${encoded.length} bytes exceed its ${length}`);
    }
    const bytes = new Uint8Array(length);
    bytes.set(encoded);
    await this.#port.writeMemory(address, bytes);
    this.#cache.clear();
  }

  /**
   * Sets a feature from an operator's value (text from a configuration, or a typed value):
   * checks existence, availability, lock, access, enumeration entry and range/increment.
   */
  async set(name: string, value: FeatureValue): Promise<void> {
    const n = this.#node(name);
    if (!FEATURE_KINDS.has(n.kind)) {
      throw new GenicamError(`${name} is a ${n.kind} node, not a feature (Integer, Float, ...)`);
    }
    await this.#checkAvailable(n);
    if (!await this.isWritable(name)) throw new GenicamError(`feature ${name} is not writable now`);
    switch (n.kind) {
      case "Enumeration": {
        const entries = await this.enumEntries(name);
        const text = String(value);
        const v = entries.get(text);
        if (v === undefined) {
          throw new GenicamError(
            `${name} has no entry ${JSON.stringify(text)} (entries: ${
              [...entries.keys()].join(", ")
            })`,
          );
        }
        const e = childrenNamed(n.el, "EnumEntry").find((x) => x.attributes.Name === text)!;
        if (
          !await this.#flag(
            { name: `${name}.${text}`, kind: "EnumEntry", el: e },
            "pIsAvailable",
            true,
          )
        ) {
          throw new GenicamError(`${name} entry ${text} is not available now`);
        }
        return await this.setNumber(name, v);
      }
      case "Boolean": {
        const t = String(value).toLowerCase();
        const on = value === true || t === "true" || t === "1" || t === "on";
        const off = value === false || t === "false" || t === "0" || t === "off";
        if (!on && !off) {
          throw new GenicamError(`${name}: ${JSON.stringify(value)} is not a boolean`);
        }
        return await this.setNumber(name, on ? 1 : 0);
      }
      case "String":
        return await this.#setString(n, String(value));
      case "Command":
        return await this.execute(name);
      default: {
        const num = typeof value === "number" ? value : Number(String(value).trim());
        if (typeof value === "boolean" || String(value).trim() === "" || !Number.isFinite(num)) {
          throw new GenicamError(`${name}: ${JSON.stringify(value)} is not a number`);
        }
        if (n.kind === "Integer" && !Number.isInteger(num)) {
          throw new GenicamError(`${name}: ${num} is not an integer`);
        }
        const r = await this.range(name);
        if (num < r.min || num > r.max) {
          throw new GenicamError(`${name}: ${num} is out of range ${r.min}..${r.max}`);
        }
        if (n.kind === "Integer" && r.inc !== undefined && r.inc > 1 && Number.isFinite(r.min)) {
          if ((num - r.min) % r.inc !== 0) {
            throw new GenicamError(`${name}: ${num} is not ${r.min} + a multiple of ${r.inc}`);
          }
        }
        return await this.setNumber(name, num);
      }
    }
  }

  /** Executes a Command (writes its CommandValue to its pValue). */
  async execute(name: string): Promise<void> {
    const n = this.#node(name);
    if (n.kind !== "Command") throw new GenicamError(`${name} is a ${n.kind}, not a Command`);
    await this.#checkAvailable(n);
    const v = await this.#numberOrRef(n, "CommandValue");
    if (v === undefined) throw new GenicamError(`Command ${name} has no CommandValue`);
    const pv = this.#pValue(n);
    if (pv === undefined) throw new GenicamError(`Command ${name} has no pValue`);
    await this.setNumber(pv, v);
  }
}
