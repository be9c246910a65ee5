/**
 * The PVs behind the recorded pvAccess fixtures (`tests/fixtures/pva/`): the recording script
 * serves them to the PVXS tools, the fixture test replays the tools' bytes against them.
 *
 * @module
 */

import { PvStore } from "../../ca/store.ts";
import { defaultCodec } from "../../ca/codec_dbr.ts";
import { WriteRefusedError } from "../../ca/pv.ts";
import { type PvaServer, type PvaServerOptions, startPvaServer } from "../../pva/server.ts";

/** Adds the fixture PVs (`R:d`, `R:l`, `R:s`, `R:arr`, `R:e`, `R:img`) to a new store. */
export function fixtureStore(): PvStore {
  const store = new PvStore(defaultCodec);
  store.add({
    name: "R:d",
    type: "double",
    initial: 1.5,
    writable: true,
    units: "s",
    precision: 3,
    onWrite: (v) => {
      if (Number(v[0]) < 0) throw new WriteRefusedError("Invalid duration: must be >= 0");
    },
  });
  store.add({ name: "R:l", type: "long", initial: 0 });
  store.add({ name: "R:s", type: "string", initial: "READY" });
  store.add({
    name: "R:arr",
    type: "double",
    maxCount: 5,
    initial: [1, 2, 3, 4, 5],
    recordType: "waveform",
  });
  store.add({ name: "R:e", type: "enum", initial: 1, enumLabels: ["Off", "On"], writable: true });
  store.add({ name: "R:img", type: "double", maxCount: 12 });
  return store;
}

/** The fixture image: 4×3 uint16, uniqueId 42. */
export const FIXTURE_IMAGE = Uint16Array.of(0, 1, 2, 3, 100, 101, 102, 103, 200, 201, 202, 203);

/**
 * Starts a PVA server for `store` on loopback only: OS-assigned TCP and UDP ports, interface
 * 127.0.0.1, no beacons, no local search forwarding, no environment; `extra` overrides any of
 * these.
 */
export function startLoopbackPvaServer(
  store: PvStore,
  extra: Partial<PvaServerOptions> = {},
): Promise<PvaServer> {
  return startPvaServer({
    store,
    env: {},
    tcpPort: 0,
    udpPort: 0,
    interfaces: ["127.0.0.1"],
    beaconAddresses: [],
    forwardSearches: false, // tests never send to multicast, even on loopback
    ...extra,
  });
}
