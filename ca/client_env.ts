/**
 * Client-side Channel Access environment: where name searches go (`EPICS_CA_ADDR_LIST`,
 * `EPICS_CA_AUTO_ADDR_LIST`, `EPICS_CA_SERVER_PORT`) and the largest accepted array
 * (`EPICS_CA_MAX_ARRAY_BYTES`).
 *
 * @module
 */

/** One search destination. */
export interface SearchDestination {
  /** IPv4 address or host name. */
  hostname: string;
  /** UDP port. */
  port: number;
}

/** Client settings derived from the environment. */
export interface CaClientEnvConfig {
  /** Search destinations. */
  addresses: SearchDestination[];
  /** Largest payload accepted from servers, bytes. */
  maxArrayBytes: number;
}

/** Default largest accepted payload when the environment says nothing (256 MiB). */
export const DEFAULT_CLIENT_MAX_ARRAY_BYTES = 256 * 1024 * 1024;

function ipv4ToInt(text: string): number {
  return text.split(".").reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
}

function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join(".");
}

/**
 * Reads the client environment. With `EPICS_CA_AUTO_ADDR_LIST` unset or YES the broadcast
 * address of every up, non-loopback IPv4 interface is added (from `interfaces`).
 */
export function readClientEnv(
  env: Readonly<Record<string, string | undefined>>,
  interfaces: () => Deno.NetworkInterfaceInfo[] = () => Deno.networkInterfaces(),
): CaClientEnvConfig {
  const portText = env.EPICS_CA_SERVER_PORT?.trim();
  const defaultPort = portText && /^\d+$/.test(portText) ? Number(portText) : 5064;
  const addresses: SearchDestination[] = [];
  for (const entry of (env.EPICS_CA_ADDR_LIST ?? "").split(/\s+/)) {
    if (entry === "") continue;
    const [hostname, port] = entry.split(":");
    const p = port !== undefined && /^\d+$/.test(port) ? Number(port) : defaultPort;
    if (hostname !== "" && p >= 1 && p <= 65535) addresses.push({ hostname, port: p });
  }
  const auto = (env.EPICS_CA_AUTO_ADDR_LIST ?? "YES").trim().toUpperCase() !== "NO";
  if (auto) {
    for (const nic of interfaces()) {
      if (nic.family !== "IPv4" || nic.address.startsWith("127.")) continue;
      const mask = ipv4ToInt(nic.netmask);
      const bcast = intToIpv4((ipv4ToInt(nic.address) | ~mask) >>> 0);
      if (!addresses.some((a) => a.hostname === bcast && a.port === defaultPort)) {
        addresses.push({ hostname: bcast, port: defaultPort });
      }
    }
  }
  const maxText = env.EPICS_CA_MAX_ARRAY_BYTES?.trim();
  const autoArray = (env.EPICS_CA_AUTO_ARRAY_BYTES ?? "YES").trim().toUpperCase() !== "NO";
  const maxArrayBytes = !autoArray && maxText && /^\d+$/.test(maxText)
    ? Math.max(16384, Number(maxText))
    : DEFAULT_CLIENT_MAX_ARRAY_BYTES;
  return { addresses, maxArrayBytes };
}
