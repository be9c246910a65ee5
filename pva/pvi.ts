/**
 * PVI structures (spec §10): the `{prefix}PVI` PVs ophyd-async's `PviDeviceConnector` reads to
 * build a device without a hand-written PV list. Its reader (`PviTree.build_device_tree`) takes
 * `value` of the GET as `{entry: {role: pv}}`: `{x}` alone is a command (put 1 to an integer
 * NTScalar/NTEnum), `{d}` alone a child device whose own PVI PV that is, `{r, w}` / `{rw}` a
 * SignalRW, `{r}` a SignalR, `{w}` a SignalW, anything else an error; entries named `__<n>` are
 * DeviceVector elements. Entry names are the attribute names. No I/O.
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

/**
 * Makes `name` an entry name ophyd-async's `PviDeviceConnector` turns into an attribute: a Python
 * identifier (other characters become `_`, a leading digit gets a `_` before it), and never
 * `__<n>`, which that reader takes for element n of a `DeviceVector`.
 */
export function pviName(name: string): string {
  let id = name.replace(/[^A-Za-z0-9_]/g, "_");
  if (/^[0-9]/.test(id)) id = `_${id}`;
  if (/^__[0-9]+$/.test(id)) id = id.slice(1);
  return id === "" ? "_" : id;
}

function pviPv(name: string, prefix: string, signals: readonly PviSignal[]): PviPv {
  const members: Record<string, FieldDesc> = {};
  const values: StructValue = {};
  for (const s of signals) {
    // Names that became equal (`a-b`, `a_b`) are told apart by a suffix: none is lost.
    let key = pviName(s.name);
    for (let n = 2; key in members; n++) key = `${pviName(s.name)}_${n}`;
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
