/**
 * Reads the `EPICS_PVAS_*` variables a pvAccess server honours, with their `EPICS_PVA_*`
 * fall-backs (spec §9.2), into a plain configuration object.
 *
 * @module
 */

import { isIPv4, parseAddressList, parseYesNo, type UdpDestination } from "../ca/mod.ts";

/** Default TCP port. */
export const DEFAULT_PVA_SERVER_PORT = 5075;
/** Default UDP search (and beacon destination) port. */
export const DEFAULT_PVA_BROADCAST_PORT = 5076;

/** Server settings derived from the environment. */
export interface PvaServerEnvConfig {
  /** TCP port (`EPICS_PVAS_SERVER_PORT`, `EPICS_PVA_SERVER_PORT`); 0 = OS-assigned. */
  serverPort: number;
  /** UDP search port (`EPICS_PVAS_BROADCAST_PORT`, `EPICS_PVA_BROADCAST_PORT`); 0 = OS-assigned. */
  broadcastPort: number;
  /** Addresses to bind (`EPICS_PVAS_INTF_ADDR_LIST`); empty = 0.0.0.0. */
  interfaces: string[];
  /** Beacon destinations (`EPICS_PVAS_BEACON_ADDR_LIST`, `EPICS_PVA_ADDR_LIST`). */
  beaconAddresses: UdpDestination[];
  /** Add interface broadcast addresses (`EPICS_PVAS_AUTO_BEACON_ADDR_LIST`, `..._AUTO_ADDR_LIST`). */
  autoBeacon: boolean;
  /** Source addresses whose searches are ignored (`EPICS_PVAS_IGNORE_ADDR_LIST`). */
  ignoreAddresses: string[];
  /** Inactivity timeout in seconds (`EPICS_PVA_CONN_TMO` × 4/3, at least 2). */
  idleTimeout: number;
}

function first(env: Record<string, string | undefined>, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  return undefined;
}

function port(text: string | undefined, fallback: number): number {
  if (text === undefined || !/^\d+$/.test(text)) return fallback;
  const n = Number(text);
  return n <= 65535 ? n : fallback;
}

/** Derives the PVA server configuration from an environment record. */
export function readPvaServerEnv(env: Record<string, string | undefined>): PvaServerEnvConfig {
  const broadcastPort = port(
    first(env, "EPICS_PVAS_BROADCAST_PORT", "EPICS_PVA_BROADCAST_PORT"),
    DEFAULT_PVA_BROADCAST_PORT,
  );
  const interfaces = (env.EPICS_PVAS_INTF_ADDR_LIST ?? "").split(/\s+/)
    .map((e) => e.split(":")[0]).filter(isIPv4);
  const tmo = Number(first(env, "EPICS_PVA_CONN_TMO") ?? "30");
  return {
    serverPort: port(
      first(env, "EPICS_PVAS_SERVER_PORT", "EPICS_PVA_SERVER_PORT"),
      DEFAULT_PVA_SERVER_PORT,
    ),
    broadcastPort,
    interfaces: interfaces.includes("0.0.0.0") ? [] : interfaces,
    beaconAddresses: parseAddressList(
      first(env, "EPICS_PVAS_BEACON_ADDR_LIST", "EPICS_PVA_ADDR_LIST"),
      broadcastPort,
    ),
    autoBeacon: parseYesNo(
      first(env, "EPICS_PVAS_AUTO_BEACON_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST"),
      true,
    ),
    ignoreAddresses: (env.EPICS_PVAS_IGNORE_ADDR_LIST ?? "").split(/\s+/)
      .filter((e) => e !== "").map((e) => e.split(":")[0]).filter(isIPv4),
    idleTimeout: Math.max(2, (Number.isFinite(tmo) && tmo > 0 ? tmo : 30) * 4 / 3),
  };
}
