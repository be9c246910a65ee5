/**
 * UDP name search: one request datagram in, the reply datagram(s) out (spec §4.2). Pure.
 *
 * {@link answerSearchDatagram} refers to nothing outside its own body (only built-in globals):
 * the search worker (`ca/search_worker.ts`) runs its source text on a thread of its own, which
 * also works from the single-file bundle. Its header layout and reply format are those of
 * `ca/messages.ts` (checked byte for byte against `searchReplyUdp`/`versionMessage` in tests).
 *
 * @module
 */

/** Largest reply datagram composed (rsrv `MAX_UDP_SEND`). */
export const MAX_UDP_REPLY = 1024;

/**
 * Answers the SEARCH messages of one datagram. `has(name)` says whether a name is served.
 * Returns the reply datagrams (empty when nothing is found); unknown names get no reply, other
 * commands than VERSION/SEARCH end parsing, and so does a truncated message. Each reply datagram
 * starts with a VERSION message echoing the client's sequence number when the client speaks
 * ≥ 4.11, and holds at most {@link MAX_UDP_REPLY} bytes.
 */
export function answerSearchDatagram(
  datagram: Uint8Array,
  tcpPort: number,
  has: (name: string) => boolean,
): Uint8Array[] {
  // Self-contained on purpose (see the module comment): constants of ca/messages.ts repeated.
  const CMD_VERSION = 0;
  const CMD_SEARCH = 6;
  const MINOR_VERSION = 13;
  const MAX_REPLY = 1024;
  const REPLY = 24; // 16-byte header + 8-byte payload
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const latin1 = new TextDecoder("latin1");
  let clientMinor = 0;
  let sequence = 0;
  let sequenceValid = false;
  const cids: number[] = [];
  let pos = 0;
  while (pos + 16 <= datagram.length) {
    const cmd = view.getUint16(pos);
    let size = view.getUint16(pos + 2);
    const type = view.getUint16(pos + 4);
    let count = view.getUint16(pos + 6);
    const p1 = view.getUint32(pos + 8);
    const p2 = view.getUint32(pos + 12);
    let start = pos + 16;
    if (size === 0xffff) {
      if (pos + 24 > datagram.length) break;
      size = view.getUint32(pos + 16);
      count = view.getUint32(pos + 20);
      start = pos + 24;
    }
    const end = start + size;
    if (end > datagram.length) break;
    pos = end;
    if (cmd === CMD_VERSION) {
      clientMinor = count;
      if (count >= 11 && type === 1) {
        sequence = p1;
        sequenceValid = true;
      }
      continue;
    }
    if (cmd !== CMD_SEARCH) break;
    if (count < 4 || size <= 1) continue;
    if (clientMinor === 0) clientMinor = count;
    const payload = datagram.subarray(start, end);
    const nul = payload.indexOf(0);
    const name = latin1.decode(nul < 0 ? payload : payload.subarray(0, nul));
    if (has(name)) cids.push(p2);
  }
  if (cids.length === 0) return [];
  const prefix = clientMinor >= 11 ? 16 : 0;
  const perDatagram = Math.floor((MAX_REPLY - prefix) / REPLY);
  const datagrams: Uint8Array[] = [];
  for (let first = 0; first < cids.length; first += perDatagram) {
    const batch = cids.slice(first, first + perDatagram);
    const out = new Uint8Array(prefix + batch.length * REPLY);
    const w = new DataView(out.buffer);
    if (prefix > 0) {
      w.setUint16(0, CMD_VERSION);
      w.setUint16(4, 1);
      w.setUint16(6, MINOR_VERSION);
      w.setUint32(8, sequenceValid ? sequence : 0);
    }
    batch.forEach((cid, i) => {
      const at = prefix + i * REPLY;
      w.setUint16(at, CMD_SEARCH);
      w.setUint16(at + 2, 8);
      w.setUint16(at + 4, tcpPort);
      w.setUint32(at + 8, 0xffffffff); // address: the datagram's source
      w.setUint32(at + 12, cid);
      out[at + 17] = MINOR_VERSION;
    });
    datagrams.push(out);
  }
  return datagrams;
}
