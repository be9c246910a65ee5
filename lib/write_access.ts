/**
 * Write access for operators (`--write-hosts` / `DISS_WRITE_HOSTS`): a {@link WriteAccessHook}
 * that lets only listed clients write; every other client gets read-only access rights (and
 * ECA_NOWTACCESS if it writes anyway).
 *
 * An entry names a host, optionally with a user (`user@host`):
 * - an IPv4 address matches the TCP peer address of the circuit (what the server sees);
 * - a host name matches, ignoring case, the host name the client announces (CA `HOST_NAME`, as
 *   EPICS access security host groups do without `asCheckClientIP`);
 * - a user matches the user name the client announces (CA `CLIENT_NAME`).
 * Announced names come from the client and can be forged: addresses are the stronger check.
 *
 * @module
 */

import { type ClientInfo, isIPv4, type WriteAccessHook } from "../ca/mod.ts";
import type { WriteHostEntry } from "./config.ts";

/** Whether `client` matches one write-host entry. */
export function matchesWriteHost(entry: WriteHostEntry, client: ClientInfo): boolean {
  if (entry.user !== undefined && entry.user !== client.user) return false;
  if (isIPv4(entry.host)) return entry.host === client.address;
  return entry.host.toLowerCase() === client.host.toLowerCase();
}

/** A write-access hook allowing writes only to clients matching one of `entries`. */
export function writeHostsAccess(entries: readonly WriteHostEntry[]): WriteAccessHook {
  return (_pv, client) => entries.some((entry) => matchesWriteHost(entry, client));
}

/** Formats entries back into the list syntax (for the start-up log line). */
export function formatWriteHosts(entries: readonly WriteHostEntry[]): string {
  return entries.map((e) => (e.user === undefined ? e.host : `${e.user}@${e.host}`)).join(",");
}
