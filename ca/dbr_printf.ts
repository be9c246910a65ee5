/**
 * C `printf` `%.*f` and `%.*e` for doubles as glibc prints them: exact decimal value, ties
 * rounded half to even (JavaScript's `toFixed`/`toExponential` round exact ties away from zero),
 * exponent with at least two digits, `nan`/`inf`, `-0`. Used by the rsrv number → string rules.
 *
 * @module
 */

const bits = new DataView(new ArrayBuffer(8));

/** Whether the double `v` (finite, ≥ 0) equals exactly the decimal `digits` × 10^`k`. */
function equalsDecimal(v: number, digits: string, k: number): boolean {
  bits.setFloat64(0, v);
  const hi = bits.getUint32(0);
  const lo = bits.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e: number;
  if (biased === 0) {
    e = -1074;
  } else {
    mantissa |= 1n << 52n;
    e = biased - 1075;
  }
  // digits × 10^k == mantissa × 2^e, both sides scaled to integers
  let left = BigInt(digits);
  let right = mantissa;
  if (k >= 0) left *= 10n ** BigInt(k);
  else right *= 10n ** BigInt(-k);
  if (e >= 0) right <<= BigInt(e);
  else left <<= BigInt(-e);
  return left === right;
}

function special(v: number): string | undefined {
  if (Number.isNaN(v)) return "nan";
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  return undefined;
}

function isNegative(v: number): boolean {
  return v < 0 || Object.is(v, -0);
}

/** Drops the last digit of a number text, and a then trailing '.'. */
function dropLastDigit(text: string): string {
  const cut = text.slice(0, -1);
  return cut.endsWith(".") ? cut.slice(0, -1) : cut;
}

/** Whether `text` (digits, maybe a '.') ends with an even digit. */
function endsEven(text: string): boolean {
  return (text.charCodeAt(text.length - 1) - 48) % 2 === 0;
}

/** C `%.{p}f` of a double (`p` 0..97; magnitudes below 1e21). */
export function printfFixed(v: number, p: number): string {
  const s = special(v);
  if (s !== undefined) return s;
  const a = Math.abs(v);
  const sign = isNegative(v) ? "-" : "";
  let text = a.toFixed(p);
  const longer = a.toFixed(p + 3);
  if (longer.endsWith("500")) {
    const next = a.toFixed(p + 1);
    const digits = next.replace(".", "");
    if (digits.endsWith("5") && equalsDecimal(a, digits, -(p + 1))) {
      const truncated = dropLastDigit(next);
      if (endsEven(truncated)) text = truncated;
    }
  }
  return sign + text;
}

/** Splits JS exponential text "d.ddde+x" into mantissa and exponent number. */
function splitExponential(text: string): [string, number] {
  const e = text.indexOf("e");
  return [text.slice(0, e), Number(text.slice(e + 1))];
}

/** C `%.{p}e` of a double (`p` 0..97). */
export function printfExponential(v: number, p: number): string {
  const s = special(v);
  if (s !== undefined) return s;
  const a = Math.abs(v);
  const sign = isNegative(v) ? "-" : "";
  let [mantissa, exponent] = splitExponential(a.toExponential(p));
  const [longer] = splitExponential(a.toExponential(p + 3));
  if (longer.endsWith("500")) {
    const [next, nextExponent] = splitExponential(a.toExponential(p + 1));
    const digits = next.replace(".", "");
    if (digits.endsWith("5") && equalsDecimal(a, digits, nextExponent - (p + 1))) {
      const truncated = dropLastDigit(next);
      if (endsEven(truncated)) {
        mantissa = truncated;
        exponent = nextExponent;
      }
    }
  }
  const magnitude = String(Math.abs(exponent)).padStart(2, "0");
  return `${sign}${mantissa}e${exponent < 0 ? "-" : "+"}${magnitude}`;
}
