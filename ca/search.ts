/**
 * UDP name search: one request datagram in, the reply datagram(s) out (spec §4.2). Pure.
 *
 * @module
 */

import {
  CA_MINOR_VERSION,
  CMD,
  datagramMessages,
  decodeCString,
  searchReplyUdp,
  versionMessage,
} from "./messages.ts";
import { concatBytes } from "../core/bytes.ts";

/** Largest reply datagram composed (rsrv `MAX_UDP_SEND`). */
export const MAX_UDP_REPLY = 1024;

/**
 * Answers the SEARCH messages of one datagram. `has(name)` says whether a name is served.
 * Returns the reply datagrams (empty when nothing is found); unknown names get no reply, other
 * commands than VERSION/SEARCH end parsing. Each reply datagram starts with a VERSION message
 * echoing the client's sequence number when the client speaks ≥ 4.11.
 */
export function answerSearchDatagram(
  datagram: Uint8Array,
  tcpPort: number,
  has: (name: string) => boolean,
): Uint8Array[] {
  let clientMinor = 0;
  let sequence = 0;
  let sequenceValid = false;
  const replies: Uint8Array[] = [];
  for (const message of datagramMessages(datagram)) {
    const h = message.header;
    if (h.cmd === CMD.VERSION) {
      clientMinor = h.count;
      if (h.count >= 11 && h.type === 1) {
        sequence = h.p1;
        sequenceValid = true;
      }
      continue;
    }
    if (h.cmd !== CMD.SEARCH) break;
    if (h.count < 4 || h.size <= 1) continue;
    if (clientMinor === 0) clientMinor = h.count;
    const name = decodeCString(message.payload);
    if (!has(name)) continue;
    replies.push(searchReplyUdp(tcpPort, h.p2));
  }
  if (replies.length === 0) return [];
  const prefix = clientMinor >= 11
    ? versionMessage(1, sequenceValid ? sequence : 0, CA_MINOR_VERSION)
    : undefined;
  const datagrams: Uint8Array[] = [];
  let parts: Uint8Array[] = [];
  let length = 0;
  const flush = () => {
    if (parts.length === 0) return;
    datagrams.push(concatBytes(prefix ? [prefix, ...parts] : parts));
    parts = [];
    length = 0;
  };
  const prefixLength = prefix?.length ?? 0;
  for (const reply of replies) {
    if (prefixLength + length + reply.length > MAX_UDP_REPLY) flush();
    parts.push(reply);
    length += reply.length;
  }
  flush();
  return datagrams;
}
