/**
 * pvAccess name search (spec §4): SEARCH decoding, SEARCH_RESPONSE, BEACON and ORIGIN_TAG
 * encoding, and the answer to one UDP datagram — replies, plus the copy of a unicast search to
 * forward to the other servers on this host (§4.5). No I/O.
 *
 * @module
 */

import { buildMessage, Cmd, decodeHeader, HEADER_SIZE, isBigEndian } from "./messages.ts";
import { PvaProtocolError, WireReader, WireWriter } from "./wire.ts";

/** A decoded SEARCH. */
export interface SearchRequest {
  sequence: number;
  flags: number;
  /** Response address as dotted IPv4, or undefined when zero (use the source address). */
  replyAddress: string | undefined;
  replyPort: number;
  protocols: string[];
  channels: { id: number; name: string }[];
}

/** SEARCH flag: reply even when nothing is found. */
export const SEARCH_REPLY_REQUIRED = 0x01;
/** SEARCH flag: sent as unicast. */
export const SEARCH_UNICAST = 0x80;

/** Reads a 16-byte IPv6 / IPv4-mapped address; undefined when all zero or `::ffff:0.0.0.0`. */
export function readAddress(r: WireReader): string | undefined {
  const b = r.take(16, "address");
  const v4 = b.subarray(12);
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (b.every((x) => x === 0)) return undefined;
  if (mapped) return v4.every((x) => x === 0) ? undefined : v4.join(".");
  // A native IPv6 address: not reachable by our IPv4 sockets.
  return undefined;
}

/** Writes an IPv4 address (or zero = "use the source address") as IPv4-mapped IPv6. */
export function writeAddress(w: WireWriter, ipv4?: string): void {
  for (let i = 0; i < 10; i++) w.u8(0);
  w.u8(0xff).u8(0xff);
  const parts = (ipv4 ?? "0.0.0.0").split(".").map(Number);
  for (let i = 0; i < 4; i++) w.u8(parts[i] ?? 0);
}

/** Decodes a SEARCH payload. */
export function decodeSearch(r: WireReader): SearchRequest {
  const sequence = r.u32();
  const flags = r.u8();
  r.take(3, "reserved");
  const replyAddress = readAddress(r);
  const replyPort = r.u16();
  const nproto = r.count(1, "protocol");
  const protocols: string[] = [];
  for (let i = 0; i < nproto; i++) protocols.push(r.string());
  const n = r.u16();
  if (n * 5 > r.remaining) throw new PvaProtocolError(`search of ${n} names exceeds the message`);
  const channels: { id: number; name: string }[] = [];
  for (let i = 0; i < n; i++) {
    const id = r.u32();
    const name = r.string();
    channels.push({ id, name });
  }
  return { sequence, flags, replyAddress, replyPort, protocols, channels };
}

/** Server identity carried in search replies and beacons. */
export interface ServerIdentity {
  /** 12-byte GUID. */
  guid: Uint8Array;
  /** TCP port. */
  tcpPort: number;
}

/** Encodes a SEARCH_RESPONSE (big-endian for UDP, as PVXS). */
export function encodeSearchResponse(
  identity: ServerIdentity,
  sequence: number,
  found: boolean,
  ids: readonly number[],
  littleEndian = false,
): Uint8Array {
  return buildMessage(Cmd.SEARCH_RESPONSE, true, littleEndian, (w) => {
    w.bytes(identity.guid).u32(sequence);
    writeAddress(w);
    w.u16(identity.tcpPort).string("tcp").u8(found ? 1 : 0).u16(ids.length);
    for (const id of ids) w.u32(id);
  });
}

/** Encodes a BEACON (big-endian). */
export function encodeBeacon(
  identity: ServerIdentity,
  sequence: number,
  changeCount: number,
): Uint8Array {
  return buildMessage(Cmd.BEACON, true, false, (w) => {
    w.bytes(identity.guid).u8(0).u8(sequence & 0xff).u16(changeCount & 0xffff);
    writeAddress(w);
    w.u16(identity.tcpPort).string("tcp").u8(0xff);
  });
}

/** Encodes a SEARCH (our client; big-endian as PVXS). */
export function encodeSearch(
  sequence: number,
  flags: number,
  replyPort: number,
  channels: readonly { id: number; name: string }[],
  littleEndian = false,
): Uint8Array {
  return buildMessage(Cmd.SEARCH, false, littleEndian, (w) => {
    w.u32(sequence).u8(flags).u8(0).u8(0).u8(0);
    for (let i = 0; i < 16; i++) w.u8(0);
    w.u16(replyPort).size(1).string("tcp").u16(channels.length);
    for (const c of channels) w.u32(c.id).string(c.name);
  });
}

/** The IDs of `request` hosted here, or undefined when no reply is due. */
export function searchHits(
  request: SearchRequest,
  has: (name: string) => boolean,
): number[] | undefined {
  const ids = request.protocols.includes("tcp")
    ? request.channels.filter((c) => has(c.name)).map((c) => c.id)
    : [];
  if (ids.length === 0 && !(request.flags & SEARCH_REPLY_REQUIRED)) return undefined;
  return ids;
}

/** One reply to send for a UDP datagram. */
export interface SearchReply {
  bytes: Uint8Array;
  /** Destination address; undefined = the datagram's source address. */
  address: string | undefined;
  port: number;
}

/** Multicast group of local search forwarding (joined on the loopback interface only). */
export const LOCAL_FORWARD_GROUP = "224.0.0.128";

/** Payload size of an ORIGIN_TAG message: one 16-byte address. */
const ORIGIN_TAG_SIZE = 16;

/**
 * Encodes the ORIGIN_TAG (0x16) message that prefixes a forwarded search: the address the
 * original datagram was sent to (all zero when unknown, e.g. a socket bound to 0.0.0.0).
 * Big-endian with client flags, as PVXS sends it.
 */
export function encodeOriginTag(destination?: string): Uint8Array {
  return buildMessage(Cmd.ORIGIN_TAG, false, false, (w) => writeAddress(w, destination));
}

/** How a UDP datagram reached the server. */
export type DatagramRoute =
  /** On the search port, from the client itself (broadcast or unicast). */
  | "direct"
  /** Through the local forwarding group, from a server on this host. */
  | "forwarded";

/** What the server knows about one received UDP datagram. */
export interface DatagramContext {
  route: DatagramRoute;
  /** The datagram's source address (dotted IPv4). */
  source: string;
  /** Build a forwarded copy of a unicast SEARCH received directly (default false). */
  forward?: boolean;
  /** The address the datagram was sent to, when known (written into the ORIGIN_TAG). */
  destination?: string;
}

/** The answer to one UDP datagram. */
export interface DatagramAnswer {
  /** Search replies to send. */
  replies: SearchReply[];
  /**
   * The datagram to send to the local forwarding group, or undefined: an ORIGIN_TAG, then the
   * received messages with every unicast SEARCH's flag cleared and its reply address filled in
   * (the receivers cannot see the client's address otherwise).
   */
  forward: Uint8Array | undefined;
}

/** Whether a dotted IPv4 address is a multicast one (224.0.0.0/4). */
function isMulticast(address: string): boolean {
  const first = Number(address.split(".")[0]);
  return first >= 224 && first <= 239;
}

/** Offsets in a SEARCH payload (spec §4.2). */
const SEARCH_FLAGS_AT = 4;
const SEARCH_REPLY_ADDRESS_AT = 8;

/**
 * Answers one UDP datagram (spec §4.2, §4.5): every SEARCH message in it gets a reply when names
 * are found or a reply is required. The forwarding rules of PVXS, which keep forwarding from
 * looping or amplifying traffic:
 * - `direct`: a datagram that starts with an ORIGIN_TAG is ignored (tags are only trusted from
 *   the loopback group); a SEARCH with the unicast flag is forwarded when `forward` is set (the
 *   server still answers it itself).
 * - `forwarded`: at most one ORIGIN_TAG, first; never forwarded again; a SEARCH whose reply
 *   address is zero is dropped (its source is the forwarding server, not the client).
 *
 * Malformed datagrams throw {@link PvaProtocolError}.
 */
export function answerSearchDatagram(
  datagram: Uint8Array,
  identity: ServerIdentity,
  has: (name: string) => boolean,
  context: DatagramContext = { route: "direct", source: "0.0.0.0" },
): DatagramAnswer {
  const replies: SearchReply[] = [];
  const forwarded = context.route === "forwarded";
  // Never answer (or forward for) a multicast source; forwarded copies come over loopback only.
  if (isMulticast(context.source) || forwarded && !context.source.startsWith("127.")) {
    return { replies, forward: undefined };
  }
  /** Offsets of the unicast SEARCH payloads to rewrite in the forwarded copy. */
  const unicast: { at: number; replyAddress: string }[] = [];
  let at = 0;
  while (at + HEADER_SIZE <= datagram.length) {
    const h = decodeHeader(datagram, at);
    if (h.flags & 0x01) throw new PvaProtocolError("control message in a datagram");
    const end = at + HEADER_SIZE + h.size;
    if (end > datagram.length) throw new PvaProtocolError("datagram shorter than its message");
    const payloadAt = at + HEADER_SIZE;
    const payload = datagram.subarray(payloadAt, end);
    const first = at === 0;
    at = end;
    if (h.command === Cmd.ORIGIN_TAG) {
      if (h.size < ORIGIN_TAG_SIZE) throw new PvaProtocolError("short ORIGIN_TAG");
      // Trusted once, at the start of a datagram from the loopback group; otherwise the
      // datagram is not what a local server forwards: ignore the rest.
      if (!forwarded || !first) break;
      continue;
    }
    if (h.command !== Cmd.SEARCH) continue; // beacons of other servers, ...
    const r = new WireReader(payload, !isBigEndian(h.flags));
    const request = decodeSearch(r);
    if (forwarded && request.replyAddress === undefined) continue;
    if (!forwarded && context.forward && (request.flags & SEARCH_UNICAST)) {
      unicast.push({ at: payloadAt, replyAddress: request.replyAddress ?? context.source });
    }
    const ids = searchHits(request, has);
    if (ids === undefined) continue;
    replies.push({
      bytes: encodeSearchResponse(identity, request.sequence, ids.length > 0, ids),
      address: request.replyAddress,
      port: request.replyPort,
    });
  }
  let forward: Uint8Array | undefined;
  if (unicast.length > 0) {
    const tag = encodeOriginTag(context.destination);
    forward = new Uint8Array(tag.length + at);
    forward.set(tag);
    forward.set(datagram.subarray(0, at), tag.length);
    for (const u of unicast) {
      const payloadAt = tag.length + u.at;
      forward[payloadAt + SEARCH_FLAGS_AT] &= ~SEARCH_UNICAST;
      const address = new WireWriter(false);
      writeAddress(address, u.replyAddress);
      forward.set(address.toBytes(), payloadAt + SEARCH_REPLY_ADDRESS_AT);
    }
  }
  return { replies, forward };
}

/** Decoded SEARCH_RESPONSE (our client). */
export interface SearchResponse {
  guid: Uint8Array;
  sequence: number;
  address: string | undefined;
  port: number;
  protocol: string;
  found: boolean;
  ids: number[];
}

/** Decodes a SEARCH_RESPONSE payload. */
export function decodeSearchResponse(r: WireReader): SearchResponse {
  const guid = r.take(12, "guid").slice();
  const sequence = r.u32();
  const address = readAddress(r);
  const port = r.u16();
  const protocol = r.string();
  const found = r.u8() !== 0;
  const n = r.u16();
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(r.u32());
  return { guid, sequence, address, port, protocol, found, ids };
}
