/**
 * Client-side Channel Access environment: where name searches go (`EPICS_CA_ADDR_LIST`,
 * `EPICS_CA_AUTO_ADDR_LIST`, `EPICS_CA_SERVER_PORT`) and the largest accepted array
 * (`EPICS_CA_MAX_ARRAY_BYTES`).
 *
 * @module
 */

import {
  broadcastAddresses,
  DEFAULT_SERVER_PORT,
  parseHostPortList,
  parsePort,
  parseYesNo,
  type UdpDestination,
} from "./env.ts";

/** One search destination: an IPv4 address or host name, and a UDP port. */
export type SearchDestination = UdpDestination;

/** Client settings derived from the environment. */
export interface CaClientEnvConfig {
  /** Search destinations. */
  addresses: SearchDestination[];
  /** Largest payload accepted from servers, bytes. */
  maxArrayBytes: number;
}

/** Default largest accepted payload when the environment says nothing (256 MiB). */
export const DEFAULT_CLIENT_MAX_ARRAY_BYTES = 256 * 1024 * 1024;

/**
 * Reads the client environment. With `EPICS_CA_AUTO_ADDR_LIST` unset or YES the broadcast
 * address of every up, non-loopback IPv4 interface is added (from `interfaces`).
 */
export function readClientEnv(
  env: Readonly<Record<string, string | undefined>>,
  interfaces: () => Deno.NetworkInterfaceInfo[] = () => Deno.networkInterfaces(),
): CaClientEnvConfig {
  const defaultPort = parsePort(env.EPICS_CA_SERVER_PORT?.trim(), DEFAULT_SERVER_PORT);
  const addresses = parseHostPortList(env.EPICS_CA_ADDR_LIST, defaultPort);
  if (parseYesNo(env.EPICS_CA_AUTO_ADDR_LIST, true)) {
    for (const hostname of broadcastAddresses(interfaces())) {
      if (!addresses.some((a) => a.hostname === hostname && a.port === defaultPort)) {
        addresses.push({ hostname, port: defaultPort });
      }
    }
  }
  const maxText = env.EPICS_CA_MAX_ARRAY_BYTES?.trim();
  const maxArrayBytes = !parseYesNo(env.EPICS_CA_AUTO_ARRAY_BYTES, true) && maxText &&
      /^\d+$/.test(maxText)
    ? Math.max(16384, Number(maxText))
    : DEFAULT_CLIENT_MAX_ARRAY_BYTES;
  return { addresses, maxArrayBytes };
}
