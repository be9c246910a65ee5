/**
 * PVI structures (spec §10): the `{prefix}PVI` PVs ophyd-async's `PviDeviceConnector` reads to
 * build a device without a hand-written PV list. No I/O.
 *
 * @module
 */

import { ALARM_T, TIME_T, timeValue } from "./nt.ts";
import { type FieldDesc, type StructDesc, type StructValue, T } from "./pvdata.ts";

/** One signal: exactly one of `r`, `w`, `rw`, `x`, `d` (PV names without the prefix). */
export interface PviSignal {
  /** Attribute name on the ophyd-async device (snake_case). */
  name: string;
  /** Read-only signal PV. */
  r?: string;
  /** Write-only signal PV. */
  w?: string;
  /** Read-write signal (one PV). */
  rw?: string;
  /** Command (put to trigger). */
  x?: string;
  /** Child device: its own PVI PV. */
  d?: string;
}

/** A PV to serve: its name, type and value. */
export interface PviPv {
  name: string;
  type: StructDesc;
  value: StructValue;
}

const ROLES = ["r", "w", "rw", "x", "d"] as const;

/** Makes `name` a Python identifier (ophyd-async attribute names). */
export function pviName(name: string): string {
  const id = name.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[0-9]/.test(id) ? `_${id}` : id;
}

function pviPv(name: string, prefix: string, signals: readonly PviSignal[]): PviPv {
  const members: Record<string, FieldDesc> = {};
  const values: StructValue = {};
  for (const s of signals) {
    const key = pviName(s.name);
    const roles = ROLES.filter((r) => s[r] !== undefined);
    members[key] = T.struct("", Object.fromEntries(roles.map((r) => [r, T.scalar("string")])));
    values[key] = Object.fromEntries(roles.map((r) => [r, `${prefix}${s[r]}`]));
  }
  const type = T.struct("", {
    alarm: ALARM_T,
    timeStamp: TIME_T,
    display: T.struct("", { description: T.scalar("string") }),
    value: T.struct("", members),
  });
  const value: StructValue = {
    alarm: { severity: 0, status: 0, message: "" },
    timeStamp: timeValue(Date.now()),
    display: { description: "diss-ioc PVI (ophyd-async device discovery)" },
    value: values,
  };
  return { name, type, value };
}

/**
 * The PVI PVs for the top-level `signals` (served as `{prefix}PVI`) and each child device
 * (served as `{prefix}{child}:PVI` and listed at the top as a `d` entry).
 */
export function pviStructure(
  prefix: string,
  signals: readonly PviSignal[],
  children: readonly { name: string; signals: readonly PviSignal[] }[],
): PviPv[] {
  const out: PviPv[] = [];
  const top = [...signals];
  for (const child of children) {
    top.push({ name: child.name, d: `${child.name}:PVI` });
    out.push(pviPv(`${prefix}${child.name}:PVI`, prefix, child.signals));
  }
  out.unshift(pviPv(`${prefix}PVI`, prefix, top));
  return out;
}
