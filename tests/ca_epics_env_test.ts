import assert from "node:assert/strict";
import {
  caClientEnv,
  findMarkedProcesses,
  freeUdpPort,
  killMarkedProcesses,
  MARKER_VARIABLE,
  testServerEnv,
} from "./support/epics_env.ts";

Deno.test("epics_env: loopback-only server and client environments", () => {
  assert.deepStrictEqual(testServerEnv(15123), {
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_CAS_BEACON_PORT: "15123",
  });
  const env = caClientEnv({ udpPort: 15124, marker: "m1", repeaterPort: 15125 });
  assert.equal(env.EPICS_CA_AUTO_ADDR_LIST, "NO");
  assert.equal(env.EPICS_CA_ADDR_LIST, "127.0.0.1:15124");
  assert.equal(env.EPICS_CA_REPEATER_PORT, "15125");
  assert.equal(env[MARKER_VARIABLE], "m1");
  assert.ok(Number(env.EPICS_CA_MAX_ARRAY_BYTES) >= 100_000_000);
  assert.ok(freeUdpPort() > 0);
});

Deno.test("epics_env: marked leftover processes are found and killed by PID", async () => {
  const marker = crypto.randomUUID();
  const child = new Deno.Command("sleep", {
    args: ["30"],
    env: { [MARKER_VARIABLE]: marker },
    stdout: "null",
    stderr: "null",
  }).spawn();
  assert.deepStrictEqual(findMarkedProcesses(marker), [child.pid]);
  assert.deepStrictEqual(killMarkedProcesses(marker), [child.pid]);
  const status = await child.status;
  assert.equal(status.signal, "SIGKILL");
  assert.deepStrictEqual(findMarkedProcesses(marker), []);
});
