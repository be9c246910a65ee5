/**
 * Host side of the camera network: which local IPv4 address faces the camera (the bind address of
 * the control and stream sockets, and the stream destination), and broadcast discovery on one
 * interface that the operator named.
 *
 * @module
 */

import dgram from "node:dgram";
import {
  decodeAck,
  decodeDiscoveryAck,
  type DiscoveryInfo,
  encodeCommand,
  FLAG_ACK_REQUIRED,
  FLAG_ALLOW_BROADCAST_ACK,
  GVCP_PORT,
  GvcpCommand,
  ipv4Text,
  ipv4Value,
} from "./gvcp.ts";

/** A local IPv4 address with its netmask. */
export interface LocalAddress {
  address: string;
  netmask: string;
}

/**
 * Finds the local address to use: `iface` as an IPv4 address or an interface name; without it,
 * the interface whose subnet holds `deviceHost` (loopback for 127.x).
 */
export function resolveLocalAddress(iface: string | undefined, deviceHost?: string): LocalAddress {
  const list = Deno.networkInterfaces().filter((i) => i.family === "IPv4");
  if (iface !== undefined) {
    const hit = list.find((i) => i.address === iface || i.name === iface);
    if (hit === undefined) {
      throw new Error(
        `GIGE_INTERFACE=${iface}: no such IPv4 interface (have ${
          list.map((i) => `${i.name}=${i.address}`).join(", ")
        })`,
      );
    }
    return { address: hit.address, netmask: hit.netmask };
  }
  if (deviceHost === undefined) throw new Error("no camera address and no interface");
  if (deviceHost.startsWith("127.")) return { address: "127.0.0.1", netmask: "255.0.0.0" };
  let device: number;
  try {
    device = ipv4Value(deviceHost);
  } catch {
    return { address: "0.0.0.0", netmask: "0.0.0.0" };
  }
  for (const i of list) {
    const mask = ipv4Value(i.netmask);
    if (((ipv4Value(i.address) & mask) >>> 0) === ((device & mask) >>> 0)) {
      return { address: i.address, netmask: i.netmask };
    }
  }
  throw new Error(
    `no local interface is on the subnet of camera ${deviceHost}; set GIGE_INTERFACE`,
  );
}

/**
 * Broadcast DISCOVERY on one interface (its directed broadcast address) and collects the answers
 * for `waitMs`. Only ever used when the operator named the interface.
 */
export function discoverOnInterface(local: LocalAddress, waitMs = 1000): Promise<DiscoveryInfo[]> {
  const broadcast = ipv4Text(
    (ipv4Value(local.address) | (~ipv4Value(local.netmask) >>> 0)) >>> 0,
  );
  const socket = dgram.createSocket("udp4");
  const found: DiscoveryInfo[] = [];
  return new Promise((resolve, reject) => {
    socket.on("error", (err) => {
      socket.close();
      reject(new Error(`broadcast discovery on ${local.address} failed: ${err.message}`));
    });
    socket.on("message", (msg: Uint8Array) => {
      try {
        const ack = decodeAck(new Uint8Array(msg));
        if (ack.ack === GvcpCommand.DISCOVERY + 1 && ack.ackId === 0xffff && ack.status === 0) {
          found.push(decodeDiscoveryAck(ack.payload));
        }
      } catch {
        // not a discovery answer
      }
    });
    socket.bind(0, local.address, () => {
      socket.setBroadcast(true);
      const packet = encodeCommand(
        GvcpCommand.DISCOVERY,
        0xffff,
        new Uint8Array(0),
        FLAG_ACK_REQUIRED | FLAG_ALLOW_BROADCAST_ACK,
      );
      socket.send(packet, GVCP_PORT, broadcast);
      setTimeout(() => {
        socket.close();
        resolve(found);
      }, waitMs);
    });
  });
}
