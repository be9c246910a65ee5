/**
 * The one CI failure of `tests/eiger_restart_ioc_e2e_test.ts` (a fresh pyepics read of `state`
 * got ECA_GETFAIL, 152), reproduced without timing: the pyepics 3.4 race described at
 * `PYEPICS_FTYPE_FIX` is forced by holding `PV.__init__` between its read of the field type
 * ("not connected") and its store until the connection callback on libca's thread has run. Our
 * server answers the resulting DBR_STS_DOUBLE read of a STRING PV with ECA_GETFAIL, as rsrv does;
 * the prelude's fix makes the read ask for the right type again.
 */

import assert from "node:assert/strict";
import { startCaServer } from "../ca/server.ts";
import { PYEPICS_FTYPE_FIX, PYEPICS_PRELUDE, runPyepics } from "./support/epics_env.ts";

/** Forces the race for the first PV created on the main thread, then reads it. */
const RACE = `
import threading
connected = threading.Event()
_on_connect = epics.pv.PV._PV__on_connect
def on_connect(self, *args, **kwargs):
    _on_connect(self, *args, **kwargs)
    connected.set()
epics.pv.PV._PV__on_connect = on_connect
_promote = ca.promote_type
forced = {'done': False}
def promote_late(chid, use_time=False, use_ctrl=False):
    if threading.current_thread() is threading.main_thread() and not forced['done']:
        # PV.__init__: the field type as read before the channel connected, stored only after
        # the connection callback ran.
        forced['done'] = True
        connected.wait(20)
        return ca.promote_fieldtype(-1, use_time=use_time, use_ctrl=use_ctrl)
    return _promote(chid, use_time=use_time, use_ctrl=use_ctrl)
ca.promote_type = promote_late
try:
    value = epics.caget(sys.argv[1], use_monitor=False)
    out({'value': value, 'forced': forced['done']})
except Exception as error:
    out({'error': str(error), 'forced': forced['done']})
`;

Deno.test("pyepics: a PV that connected during its own creation still reads a STRING PV", async () => {
  const server = await startCaServer({
    port: 0,
    interfaces: ["127.0.0.1"],
    autoBeacon: false,
    beaconAddresses: [],
    tuneMalloc: false,
    searchWorker: false,
  });
  try {
    server.add({ name: "RACE:state", type: "string", initial: "READY" });
    const run = (prelude: string) =>
      runPyepics(RACE, { udpPort: server.udpPort, args: ["RACE:state"], prelude });
    const fixed = await run(PYEPICS_PRELUDE);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.deepEqual(fixed.json, { value: "READY", forced: true }, fixed.stderr);
    // Without the fix the forced race gives exactly the CI failure.
    const unfixed = await run(PYEPICS_PRELUDE.replace(PYEPICS_FTYPE_FIX, ""));
    assert.deepEqual(unfixed.json, { error: "Get failed; status code: 152", forced: true });
  } finally {
    await server.close();
  }
});
