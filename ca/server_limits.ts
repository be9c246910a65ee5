/**
 * Server-wide limits that protect the IOC from its clients: how many circuits may be open at
 * once, and how much memory may be kept alive on behalf of clients that do not read their
 * data. Read from `DISS_CA_MAX_CIRCUITS` and `DISS_CA_SLOW_CLIENT_MB`; past a limit the
 * server closes the slowest circuit ({@link slowestCircuit}).
 *
 * @module
 */

/** Server-wide limits. */
export interface ServerLimits {
  /** Concurrent circuits (TCP connections) at most. */
  maxCircuits: number;
  /** Bytes kept alive for slow clients at most (superseded payloads and queued replies). */
  slowClientBudget: number;
  /** A circuit counts as stalled once a write is pending this long (ms). */
  stalledAfterMs: number;
}

/** Default concurrent circuits. */
export const DEFAULT_MAX_CIRCUITS = 1024;
/** Default slow-client memory budget in MiB. */
export const DEFAULT_SLOW_CLIENT_MB = 256;
/** Default time after which a pending write marks a stalled circuit (ms). */
export const DEFAULT_STALLED_AFTER_MS = 1000;

/** Defaults of {@link ServerLimits}. */
export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxCircuits: DEFAULT_MAX_CIRCUITS,
  slowClientBudget: DEFAULT_SLOW_CLIENT_MB * 1024 * 1024,
  stalledAfterMs: DEFAULT_STALLED_AFTER_MS,
};

function positive(env: Record<string, string | undefined>, name: string): number | undefined {
  const text = env[name]?.trim();
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(value > 0) || !Number.isFinite(value)) {
    throw new Error(`${name}=${JSON.stringify(env[name])}: expected a positive number`);
  }
  return value;
}

/**
 * Reads `DISS_CA_MAX_CIRCUITS` (a positive integer) and `DISS_CA_SLOW_CLIENT_MB` (MiB, may be
 * fractional); unset or empty means the default. Throws an Error naming the variable on any
 * other value.
 */
export function readServerLimits(env: Record<string, string | undefined>): ServerLimits {
  const limits = { ...DEFAULT_SERVER_LIMITS };
  const circuits = positive(env, "DISS_CA_MAX_CIRCUITS");
  if (circuits !== undefined) {
    if (!Number.isInteger(circuits)) {
      throw new Error(`DISS_CA_MAX_CIRCUITS=${env.DISS_CA_MAX_CIRCUITS}: expected an integer`);
    }
    limits.maxCircuits = circuits;
  }
  const mb = positive(env, "DISS_CA_SLOW_CLIENT_MB");
  if (mb !== undefined) limits.slowClientBudget = Math.round(mb * 1024 * 1024);
  return limits;
}

/** What {@link slowestCircuit} needs to know about a circuit. */
export interface CircuitProgress {
  /** Since when its current write is pending (undefined: nothing pending). */
  readonly writePendingSince: number | undefined;
}

/**
 * The circuit whose pending write is the oldest and started at or before `pendingBefore`, or
 * undefined when no circuit has such a write. Every other circuit kept up more recently, so this
 * is the slowest client.
 */
export function slowestCircuit<T extends CircuitProgress>(
  circuits: Iterable<T>,
  pendingBefore = Infinity,
): T | undefined {
  let slowest: T | undefined;
  for (const circuit of circuits) {
    const since = circuit.writePendingSince;
    if (since === undefined || since > pendingBefore) continue;
    if (slowest === undefined || since < slowest.writePendingSince!) slowest = circuit;
  }
  return slowest;
}
