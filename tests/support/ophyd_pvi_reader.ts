/**
 * The rules by which ophyd-async's PVI reader turns a PVI PV into a device, restated from its
 * source (`PviDeviceConnector`, `PviTree.build_device_tree`, `SignalDetails.from_entry` in
 * `ophyd_async/epics/core/_pvi_connector.py`, and `DeviceFiller.fill_child_*`): ophyd-async is not
 * installable here (no PyPI), so tests check our PVI against this port.
 *
 * @module
 */

import type { StructValue } from "../../pva/pvdata.ts";

type Entry = Record<string, string>;
/** A signal class of ophyd-async. */
export type SignalKind = "SignalR" | "SignalW" | "SignalRW";

/** What ophyd-async makes of one PVI level. */
export interface Tree {
  pviPv: string;
  signals: Record<string, { kind: SignalKind; read: string; write: string }>;
  commands: Record<string, string>;
  devices: Record<string, Tree>;
  vector: Record<number, Tree | { kind: SignalKind; read: string; write: string }>;
}

/** `SignalDetails.from_entry`: the first matching pattern wins; anything else is an error. */
export function signalOf(entry: Entry): { kind: SignalKind; read: string; write: string } {
  if ("r" in entry && "w" in entry) return { kind: "SignalRW", read: entry.r, write: entry.w };
  if ("rw" in entry) return { kind: "SignalRW", read: entry.rw, write: entry.rw };
  if ("r" in entry) return { kind: "SignalR", read: entry.r, write: entry.r };
  if ("w" in entry) return { kind: "SignalW", read: entry.w, write: entry.w };
  throw new TypeError(`Can't process entry ${JSON.stringify(entry)}`);
}

const only = (entry: Entry, key: string) => {
  const keys = Object.keys(entry);
  return keys.length === 1 && keys[0] === key;
};

/** `PviTree.build_device_tree` over `get(pv).value`. */
export async function buildTree(
  pv: string,
  get: (pv: string) => Promise<StructValue>,
): Promise<Tree> {
  const entries = { ...(await get(pv)).value as Record<string, Entry> };
  const tree: Tree = { pviPv: pv, signals: {}, commands: {}, devices: {}, vector: {} };
  for (const [name, entry] of Object.entries(entries)) {
    if (only(entry, "x")) tree.commands[name] = entry.x;
    else if (!only(entry, "d")) tree.signals[name] = signalOf(entry);
    else tree.devices[name] = await buildTree(entry.d, get);
  }
  for (const kind of ["signals", "devices"] as const) {
    for (const name of Object.keys(tree[kind])) {
      const m = /^__(\d+)$/.exec(name);
      if (m === null) continue;
      tree.vector[Number(m[1])] = tree[kind][name];
      delete tree[kind][name];
    }
  }
  return tree;
}

/** Attributes every ophyd-async Device has: a PVI entry of that name cannot be filled. */
export const DEVICE_ATTRIBUTES = ["name", "parent", "children", "log", "set_name", "connect"];
