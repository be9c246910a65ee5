/**
 * Reading backend settings from an environment map: trimmed text (empty = unset) and checked
 * numbers whose errors name the variable, the value and what was expected.
 *
 * @module
 */

/** An environment map (the process environment, or a test's own). */
export type Env = Readonly<Record<string, string | undefined>>;

/** The trimmed value of `name`, or undefined when unset or empty. */
export function envText(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

/**
 * The number in `name`, or undefined when unset; throws `NAME="raw" is invalid: expected <want>`
 * when it is not a finite number passing `check`.
 */
export function envNumber(
  env: Env,
  name: string,
  check: (n: number) => boolean,
  want: string,
): number | undefined {
  const raw = envText(env, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || !check(value)) {
    throw new Error(`${name}=${JSON.stringify(raw)} is invalid: expected ${want}`);
  }
  return value;
}
