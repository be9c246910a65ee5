/**
 * The GenICam formula language of SwissKnife, IntSwissKnife, Converter and IntConverter nodes:
 * parsed once into a tree, evaluated with variables looked up by name. Integer mode (the `Int`
 * nodes) truncates divisions and results; bit operations work on 64-bit integers.
 *
 * Operators (low to high precedence): `? :`, `||`, `&&`, `|`, `^`, `&`, `=` `<>`, `<` `>` `<=`
 * `>=`, `<<` `>>`, `+` `-`, `*` `/` `%`, `**`, unary `-` `+` `~` `!`. Functions: SIN COS TAN ASIN
 * ACOS ATAN ABS EXP LN LG SQRT TRUNC FLOOR CEIL ROUND SGN NEG; constants PI and E.
 *
 * @module
 */

/** A formula that does not parse, or refers to something unknown. */
export class FormulaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FormulaError";
  }
}

/** Looks up a variable's value. */
export type VariableLookup = (name: string) => number;

/** A parsed formula. */
export interface Formula {
  /** The source text. */
  readonly source: string;
  /** Names of variables the formula uses. */
  readonly variables: ReadonlySet<string>;
  /** Evaluates with `lookup`; `integer` truncates divisions and the result. */
  evaluate(lookup: VariableLookup, integer: boolean): number;
}

type Node =
  | { k: "num"; v: number }
  | { k: "var"; name: string; constant?: number }
  | { k: "un"; op: string; a: Node }
  | { k: "bin"; op: string; a: Node; b: Node }
  | { k: "tern"; c: Node; a: Node; b: Node }
  | { k: "call"; fn: string; args: Node[] };

const BINARY: Record<string, [number, boolean]> = {
  "||": [10, false],
  "&&": [20, false],
  "|": [40, false],
  "^": [50, false],
  "&": [60, false],
  "=": [70, false],
  "<>": [70, false],
  "<": [80, false],
  ">": [80, false],
  "<=": [80, false],
  ">=": [80, false],
  "<<": [90, false],
  ">>": [90, false],
  "+": [100, false],
  "-": [100, false],
  "*": [110, false],
  "/": [110, false],
  "%": [110, false],
  "**": [120, true],
};

const FUNCTIONS: Record<string, (...x: number[]) => number> = {
  SIN: Math.sin,
  COS: Math.cos,
  TAN: Math.tan,
  ASIN: Math.asin,
  ACOS: Math.acos,
  ATAN: Math.atan,
  ABS: Math.abs,
  EXP: Math.exp,
  LN: Math.log,
  LG: Math.log10,
  SQRT: Math.sqrt,
  TRUNC: Math.trunc,
  FLOOR: Math.floor,
  CEIL: Math.ceil,
  ROUND: (x, digits = 0) => {
    const f = 10 ** digits;
    return Math.round(x * f) / f;
  },
  SGN: Math.sign,
  NEG: (x) => -x,
};

const TOKEN =
  /\s*(?:(0[xX][0-9a-fA-F]+)|(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z0-9_.]*)|(\*\*|<<|>>|<=|>=|<>|&&|\|\||[-+*/%&|^~!<>=?:(),]))/y;

function tokenize(src: string): string[] {
  const out: string[] = [];
  TOKEN.lastIndex = 0;
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(src);
    if (m === null) throw new FormulaError(`cannot read formula at "${src.slice(pos, pos + 10)}"`);
    out.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
    pos = TOKEN.lastIndex;
  }
  return out;
}

function big(x: number): bigint {
  return BigInt(Math.trunc(x));
}

function int64(x: bigint): number {
  return Number(BigInt.asIntN(64, x));
}

function truthy(x: number): boolean {
  return x !== 0 && !Number.isNaN(x);
}

/** Parses a formula; throws {@link FormulaError} with the reason. */
export function parseFormula(source: string): Formula {
  const toks = tokenize(source);
  let i = 0;
  const variables = new Set<string>();
  const peek = () => toks[i];
  const expect = (t: string) => {
    if (toks[i] !== t) throw new FormulaError(`expected "${t}" in formula "${source}"`);
    i++;
  };
  const primary = (): Node => {
    const t = toks[i++];
    if (t === undefined) throw new FormulaError(`formula "${source}" ends early`);
    if (t === "(") {
      const e = ternary();
      expect(")");
      return e;
    }
    if (t === "-" || t === "+" || t === "~" || t === "!") return { k: "un", op: t, a: unary() };
    if (/^0[xX]/.test(t)) return { k: "num", v: Number(BigInt(t)) };
    if (/^[\d.]/.test(t)) return { k: "num", v: Number(t) };
    if (/^[A-Za-z_]/.test(t)) {
      const upper = t.toUpperCase();
      if (toks[i] === "(" && upper in FUNCTIONS) {
        i++;
        const args: Node[] = [];
        if (toks[i] !== ")") {
          args.push(ternary());
          while (toks[i] === ",") {
            i++;
            args.push(ternary());
          }
        }
        expect(")");
        return { k: "call", fn: upper, args };
      }
      // PI and E are constants unless the node defines a variable of that name.
      if (upper === "PI") return { k: "var", name: t, constant: Math.PI };
      if (upper === "E") return { k: "var", name: t, constant: Math.E };
      variables.add(t);
      return { k: "var", name: t };
    }
    throw new FormulaError(`unexpected "${t}" in formula "${source}"`);
  };
  const unary = (): Node => primary();
  const binary = (minPrec: number): Node => {
    let left = unary();
    while (true) {
      const op = peek();
      const info = op === undefined ? undefined : BINARY[op];
      if (info === undefined || info[0] < minPrec) return left;
      i++;
      const right = binary(info[1] ? info[0] : info[0] + 1);
      left = { k: "bin", op: op!, a: left, b: right };
    }
  };
  const ternary = (): Node => {
    const c = binary(10);
    if (peek() !== "?") return c;
    i++;
    const a = ternary();
    expect(":");
    const b = ternary();
    return { k: "tern", c, a, b };
  };
  const tree = ternary();
  if (i < toks.length) throw new FormulaError(`unexpected "${toks[i]}" in formula "${source}"`);

  const ev = (n: Node, look: VariableLookup, integer: boolean): number => {
    switch (n.k) {
      case "num":
        return n.v;
      case "var":
        if (n.constant === undefined) return look(n.name);
        try {
          return look(n.name);
        } catch {
          return n.constant;
        }
      case "un": {
        const a = ev(n.a, look, integer);
        if (n.op === "-") return -a;
        if (n.op === "+") return a;
        if (n.op === "!") return truthy(a) ? 0 : 1;
        return int64(~big(a));
      }
      case "tern":
        return truthy(ev(n.c, look, integer)) ? ev(n.a, look, integer) : ev(n.b, look, integer);
      case "call": {
        const args = n.args.map((a) => ev(a, look, integer));
        return FUNCTIONS[n.fn](...args);
      }
      case "bin": {
        if (n.op === "&&") {
          return truthy(ev(n.a, look, integer)) && truthy(ev(n.b, look, integer)) ? 1 : 0;
        }
        if (n.op === "||") {
          return truthy(ev(n.a, look, integer)) || truthy(ev(n.b, look, integer)) ? 1 : 0;
        }
        const a = ev(n.a, look, integer);
        const b = ev(n.b, look, integer);
        switch (n.op) {
          case "+":
            return a + b;
          case "-":
            return a - b;
          case "*":
            return a * b;
          case "/":
            if (integer) {
              if (b === 0) throw new FormulaError(`division by zero in "${source}"`);
              return Math.trunc(a / b);
            }
            return a / b;
          case "%":
            if (b === 0) throw new FormulaError(`modulo by zero in "${source}"`);
            return integer ? Math.trunc(a) % Math.trunc(b) : a % b;
          case "**":
            return a ** b;
          case "=":
            return a === b ? 1 : 0;
          case "<>":
            return a !== b ? 1 : 0;
          case "<":
            return a < b ? 1 : 0;
          case ">":
            return a > b ? 1 : 0;
          case "<=":
            return a <= b ? 1 : 0;
          case ">=":
            return a >= b ? 1 : 0;
          case "&":
            return int64(big(a) & big(b));
          case "|":
            return int64(big(a) | big(b));
          case "^":
            return int64(big(a) ^ big(b));
          case "<<":
            return int64(big(a) << big(b));
          case ">>":
            return int64(big(a) >> big(b));
        }
        throw new FormulaError(`operator ${n.op} unknown`);
      }
    }
  };
  return {
    source,
    variables,
    evaluate(lookup, integer) {
      const v = ev(tree, lookup, integer);
      return integer ? Math.trunc(v) : v;
    },
  };
}
