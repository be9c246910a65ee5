/**
 * Reads the `EPICS_CAS_*` / `EPICS_CA_*` environment variables a CA server honours
 * (spec §11.2) into a plain configuration object. The environment is passed in as a record so
 * tests can inject it.
 *
 * @module
 */

/** One UDP destination. */
export interface UdpDestination {
  /** IPv4 address. */
  hostname: string;
  /** Port. */
  port: number;
}

/** Server settings derived from the environment. */
export interface CaServerEnvConfig {
  /** UDP search port and preferred TCP port (`EPICS_CAS_SERVER_PORT`, `EPICS_CA_SERVER_PORT`). */
  serverPort: number;
  /** Addresses to bind (`EPICS_CAS_INTF_ADDR_LIST`); empty = all (0.0.0.0). */
  interfaces: string[];
  /** Explicit beacon destinations (`EPICS_CAS_BEACON_ADDR_LIST`). */
  beaconAddresses: UdpDestination[];
  /** Add the broadcast address of every up non-loopback interface (`..._AUTO_BEACON_ADDR_LIST`). */
  autoBeacon: boolean;
  /** Destination port of beacon entries without one (`EPICS_CAS_BEACON_PORT`, repeater port). */
  beaconPort: number;
  /** Maximum beacon period in seconds (`EPICS_CAS_BEACON_PERIOD`, `EPICS_CA_BEACON_PERIOD`). */
  beaconPeriod: number;
  /** Source IPs whose searches are ignored (`EPICS_CAS_IGNORE_ADDR_LIST`). */
  ignoreAddresses: string[];
}

/** Default CA server port. */
export const DEFAULT_SERVER_PORT = 5064;
/** Default repeater (beacon destination) port. */
export const DEFAULT_REPEATER_PORT = 5065;
/** Default beacon period in seconds. */
export const DEFAULT_BEACON_PERIOD = 15;

function firstDefined(env: Record<string, string | undefined>, ...names: string[]) {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  return undefined;
}

/** Parses a port number 1..65535; anything else gives `fallback`. */
export function parsePort(text: string | undefined, fallback: number): number {
  if (text === undefined || !/^\d+$/.test(text)) return fallback;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : fallback;
}

/** Whether `text` is a dotted IPv4 address. */
export function isIPv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

function splitList(text: string | undefined): string[] {
  return (text ?? "").split(/\s+/).filter((s) => s !== "");
}

/** Options of {@link parseHostPortList}. */
export interface HostPortListOptions {
  /** Which hosts are valid (default: any non-empty host). */
  acceptHost?: (host: string) => boolean;
  /**
   * Where the entries come from (a variable or option name): set, an invalid entry throws
   * {@link CaEnvError} naming it and the entry instead of being skipped.
   */
  refuseInvalidAs?: string;
}

/**
 * Parses `host[:port]` entries (whitespace-separated text such as `EPICS_CA_ADDR_LIST`, or a
 * list); entries without a port get `defaultPort`. An entry whose port is not 1..65535, that has
 * more than one `:`, or whose host fails `acceptHost` is skipped — or, with
 * {@link HostPortListOptions.refuseInvalidAs}, refused with a {@link CaEnvError}.
 */
export function parseHostPortList(
  entries: string | readonly string[] | undefined,
  defaultPort: number,
  options: HostPortListOptions = {},
): UdpDestination[] {
  const acceptHost = options.acceptHost ?? ((host: string) => host !== "");
  const out: UdpDestination[] = [];
  const list = typeof entries === "string" || entries === undefined ? splitList(entries) : entries;
  for (const entry of list) {
    const [host, portText, ...rest] = entry.trim().split(":");
    const port = portText === undefined ? defaultPort : parsePort(portText, 0);
    if (port === 0 || rest.length > 0 || !acceptHost(host)) {
      if (options.refuseInvalidAs === undefined) continue;
      throw new CaEnvError(
        `${options.refuseInvalidAs}: invalid entry ${JSON.stringify(entry)} (expected ${
          options.acceptHost === isIPv4 ? "an IPv4 address" : "a host"
        }, optionally :port with a port 1-65535)`,
      );
    }
    out.push({ hostname: host, port });
  }
  return out;
}

/** Parses `ipv4[:port]` entries separated by whitespace; invalid entries are skipped. */
export function parseAddressList(text: string | undefined, defaultPort: number): UdpDestination[] {
  return parseHostPortList(text, defaultPort, { acceptHost: isIPv4 });
}

/** Parses a YES/NO flag (case-insensitive; anything but NO counts as the default). */
export function parseYesNo(text: string | undefined, fallback: boolean): boolean {
  if (text === undefined || text.trim() === "") return fallback;
  const upper = text.trim().toUpperCase();
  if (upper === "NO") return false;
  if (upper === "YES") return true;
  return fallback;
}

/** An `EPICS_CAS_*` / `EPICS_CA_*` variable the server cannot use (one-line message). */
export class CaEnvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CaEnvError";
  }
}

/**
 * Reads a port variable (the first of `names` that is set and not blank): a decimal number
 * 1..65535, or 0 when `allowZero` (OS-assigned). Unset → `fallback`; anything else throws
 * {@link CaEnvError} naming the variable, instead of quietly serving on the default port.
 */
export function readPortVariable(
  env: Record<string, string | undefined>,
  names: readonly string[],
  fallback: number,
  allowZero = false,
): number {
  for (const name of names) {
    const text = env[name]?.trim();
    if (!text) continue;
    const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
    if (port >= 1 && port <= 65535 || (allowZero && port === 0)) return port;
    throw new CaEnvError(
      `${name}=${JSON.stringify(env[name])}: expected a port number 1-65535` +
        (allowZero ? " (or 0: any free port)" : ""),
    );
  }
  return fallback;
}

/**
 * Derives the server configuration from an environment record. A server or beacon port that is
 * not a port number, or a beacon destination that is not `ipv4[:port]`, throws
 * {@link CaEnvError}; `EPICS_CAS_SERVER_PORT=0` gives port 0.
 */
export function readServerEnv(env: Record<string, string | undefined>): CaServerEnvConfig {
  const serverPort = readPortVariable(
    env,
    ["EPICS_CAS_SERVER_PORT", "EPICS_CA_SERVER_PORT"],
    DEFAULT_SERVER_PORT,
    true,
  );
  const beaconPort = readPortVariable(
    env,
    ["EPICS_CAS_BEACON_PORT", "EPICS_CA_REPEATER_PORT"],
    DEFAULT_REPEATER_PORT,
  );
  const periodText = firstDefined(env, "EPICS_CAS_BEACON_PERIOD", "EPICS_CA_BEACON_PERIOD");
  const period = periodText === undefined ? NaN : Number(periodText);
  const interfaces = splitList(env.EPICS_CAS_INTF_ADDR_LIST)
    .map((e) => e.split(":")[0])
    .filter(isIPv4);
  return {
    serverPort,
    interfaces: interfaces.includes("0.0.0.0") ? [] : interfaces,
    // Host names are accepted, as EPICS's servers accept them; a failed send is logged per round.
    beaconAddresses: parseHostPortList(env.EPICS_CAS_BEACON_ADDR_LIST, beaconPort, {
      refuseInvalidAs: "EPICS_CAS_BEACON_ADDR_LIST",
    }),
    autoBeacon: parseYesNo(env.EPICS_CAS_AUTO_BEACON_ADDR_LIST, true),
    beaconPort,
    beaconPeriod: Number.isFinite(period) && period > 0 ? period : DEFAULT_BEACON_PERIOD,
    ignoreAddresses: splitList(env.EPICS_CAS_IGNORE_ADDR_LIST).map((e) => e.split(":")[0])
      .filter(isIPv4),
  };
}

/** Minimal shape of `Deno.networkInterfaces()` entries used here. */
export interface InterfaceInfo {
  /** Address family. */
  family: "IPv4" | "IPv6";
  /** Address. */
  address: string;
  /** Netmask. */
  netmask: string;
}

function ipToNumber(ip: string): number {
  return ip.split(".").reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}

function numberToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/**
 * Broadcast addresses (`address | ~netmask`) of every non-loopback IPv4 interface, restricted to
 * `only` when that list is non-empty; duplicates removed.
 */
export function broadcastAddresses(
  interfaces: readonly InterfaceInfo[],
  only: readonly string[] = [],
): string[] {
  const out = new Set<string>();
  for (const info of interfaces) {
    if (info.family !== "IPv4" || !isIPv4(info.address) || !isIPv4(info.netmask)) continue;
    if (info.address.startsWith("127.")) continue;
    if (only.length > 0 && !only.includes(info.address)) continue;
    const broadcast = (ipToNumber(info.address) | ~ipToNumber(info.netmask)) >>> 0;
    out.add(numberToIp(broadcast));
  }
  return [...out];
}

/**
 * The extra UDP search sockets a server bound to specific interfaces needs: a socket bound to a
 * unicast address does not receive broadcasts, so (like rsrv) each bound address also gets a
 * socket on its interface's broadcast address (`address | ~netmask`; loopback included, /31 and
 * /32 networks have none). Returns `{ broadcast, host }` pairs: receive on `broadcast`, reply
 * from the socket bound to `host`.
 */
export function broadcastSearchBindings(
  hosts: readonly string[],
  interfaces: readonly InterfaceInfo[],
): { broadcast: string; host: string }[] {
  const out: { broadcast: string; host: string }[] = [];
  for (const host of hosts) {
    if (host === "0.0.0.0") continue;
    const info = interfaces.find((i) => i.family === "IPv4" && i.address === host);
    if (info === undefined || !isIPv4(info.netmask)) continue;
    const mask = ipToNumber(info.netmask);
    if ((~mask >>> 0) <= 1) continue;
    const broadcast = numberToIp((ipToNumber(host) | ~mask) >>> 0);
    if (!out.some((b) => b.broadcast === broadcast)) out.push({ broadcast, host });
  }
  return out;
}

/** Whether `ip` falls in the IPv4 multicast range 224.0.0.0/4. */
export function isMulticast(ip: string): boolean {
  const first = Number(ip.split(".")[0]);
  return first >= 224 && first <= 239;
}
