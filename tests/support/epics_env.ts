/**
 * Test helpers for running real EPICS Channel Access clients (pyepics on Debian's libca) against
 * a server of ours, isolated on loopback.
 *
 * ```ts
 * const server = await startCaServer({ env: testServerEnv(), port: 0 });
 * const result = await runPyepics(`print(json.dumps(epics.caget("X:1")))`, {
 *   udpPort: server.udpPort,
 * });
 * assertEquals(result.code, 0);
 * assertEquals(result.json, 42);
 * ```
 *
 * The client environment never broadcasts: `EPICS_CA_AUTO_ADDR_LIST=NO`,
 * `EPICS_CA_ADDR_LIST=127.0.0.1:<udpPort>`. Every run gets its own `EPICS_CA_REPEATER_PORT` and a
 * marker variable; after the run any process that inherited the marker (a `caRepeater` that libca
 * spawned) is killed by PID.
 *
 * @module
 */

/** The Python interpreter that has Debian's `python3-pyepics` (the one on PATH may not). */
export const PYTHON = "/usr/bin/python3";

/** Name of the environment variable that marks processes spawned by one helper run. */
export const MARKER_VARIABLE = "DISS_CA_TEST_MARKER";

/**
 * pvAccess server environment for tests: loopback only, OS-assigned TCP and UDP ports, no
 * beacons (no automatic broadcast list, no explicit destinations), no local search forwarding.
 */
export function testPvaServerEnv(): Record<string, string> {
  return {
    EPICS_PVAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_PVAS_SERVER_PORT: "0",
    EPICS_PVAS_BROADCAST_PORT: "0",
    EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_PVAS_BEACON_ADDR_LIST: "",
    EPICS_PVA_ADDR_LIST: "",
    // No local search forwarding: tests never send to multicast, even on loopback.
    DISS_PVA_FORWARD: "off",
  };
}

/**
 * Server environment for tests: bind loopback only, beacons only to 127.0.0.1 (to `beaconPort`,
 * default an unused high port so no real caRepeater sees them), no automatic beacon list.
 * Pass the result as `env` of `startCaServer` (with `port: 0` for OS-assigned ports).
 */
export function testServerEnv(beaconPort = 15999): Record<string, string> {
  return {
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_CAS_BEACON_PORT: String(beaconPort),
  };
}

/** Options of {@link caClientEnv}. */
export interface ClientEnvOptions {
  /** UDP port of the server under test (search destination). */
  udpPort: number;
  /** Repeater port of this client; default: a free UDP port found at call time. */
  repeaterPort?: number;
  /** Marker value written to {@link MARKER_VARIABLE}. */
  marker: string;
  /** `EPICS_CA_MAX_ARRAY_BYTES`; default 300 000 000. */
  maxArrayBytes?: number;
}

/**
 * Environment for a CA client talking only to `127.0.0.1:<udpPort>`: no broadcast, own repeater
 * port, large `EPICS_CA_MAX_ARRAY_BYTES`, plus the marker variable. Inherits `PATH`/`HOME` only.
 */
export function caClientEnv(options: ClientEnvOptions): Record<string, string> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    EPICS_CA_AUTO_ADDR_LIST: "NO",
    EPICS_CA_ADDR_LIST: `127.0.0.1:${options.udpPort}`,
    EPICS_CA_SERVER_PORT: String(options.udpPort),
    EPICS_CA_REPEATER_PORT: String(options.repeaterPort ?? 15998),
    EPICS_CA_MAX_ARRAY_BYTES: String(options.maxArrayBytes ?? 300_000_000),
    EPICS_CA_AUTO_ARRAY_BYTES: "YES",
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
  };
  env[MARKER_VARIABLE] = options.marker;
  return env;
}

/** Finds a currently free UDP port on 127.0.0.1 (bind port 0, read it, close). */
export function freeUdpPort(): number {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}

/**
 * PIDs of processes whose environment contains `MARKER_VARIABLE=<marker>` (scans
 * `/proc/<pid>/environ`; processes of other users are skipped).
 */
export function findMarkedProcesses(marker: string): number[] {
  const needle = `${MARKER_VARIABLE}=${marker}`;
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (pid === Deno.pid) continue;
    try {
      const environ = new TextDecoder().decode(Deno.readFileSync(`/proc/${pid}/environ`));
      if (environ.split("\0").includes(needle)) pids.push(pid);
    } catch {
      // Process gone or not ours.
    }
  }
  return pids;
}

/** Sends SIGKILL to every process marked with `marker` (e.g. a caRepeater libca spawned). */
export function killMarkedProcesses(marker: string): number[] {
  const pids = findMarkedProcesses(marker);
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  return pids;
}

/** Options of {@link runPyepics}. */
export interface RunPyepicsOptions {
  /** UDP port of the server under test. */
  udpPort: number;
  /** Kill the script after this many milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Extra environment variables (override the defaults of {@link caClientEnv}). */
  env?: Record<string, string>;
  /** Command-line arguments, available to the script as `sys.argv[1:]`. */
  args?: string[];
  /** A command that runs Python, e.g. `["setpriv", "--reuid=65534", ...]` (default: none). */
  runAs?: string[];
  /** Python run before `script` (default {@link PYEPICS_PRELUDE}). */
  prelude?: string;
}

/** Result of {@link runPyepics}. */
export interface PyepicsResult {
  /** Exit code (-1 when killed by the timeout). */
  code: number;
  /** Whether the timeout killed the script. */
  timedOut: boolean;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text (libca warnings land here). */
  stderr: string;
  /** The last non-empty stdout line parsed as JSON, or `undefined` if it is not JSON. */
  json: unknown;
}

/**
 * Works around a race in pyepics 3.4 (Debian's): `PV.__init__` reads `ca_field_type()` and stores
 * the promoted request type after a few more calls; when the channel connects in between, the
 * connection callback (on libca's own thread) stores the right type first and `__init__` then
 * overwrites it with the one computed from "not connected" (-1 + DBR_TIME_STRING = 13,
 * DBR_STS_DOUBLE). Every later `caget` of that PV then asks for a DOUBLE, which a STRING PV such
 * as `state` cannot give: ECA_GETFAIL (152), from rsrv as from us. Seen once in CI. After
 * `__init__`, a connected PV's request type is computed again.
 */
export const PYEPICS_FTYPE_FIX = [
  "_pv_init = epics.pv.PV.__init__",
  "def _pv_init_fixed(self, *args, **kwargs):",
  "    _pv_init(self, *args, **kwargs)",
  "    if self.chid is not None and ca.field_type(self.chid) >= 0:",
  "        self.ftype = ca.promote_type(self.chid, use_ctrl=self.form == 'ctrl',",
  "                                     use_time=self.form == 'time')",
  "epics.pv.PV.__init__ = _pv_init_fixed",
  "",
].join("\n");

/**
 * Python prelude of every script: `json`, `sys`, `time`, `epics`, `ca` imported, with
 * {@link PYEPICS_FTYPE_FIX} applied; `out(x)` prints `x` as one JSON line (numpy values become
 * lists/numbers); `wait(pv, value, t=20)` polls `pv` (uncached reads, every 10 ms) until it
 * equals `value`, returning False after `t` seconds.
 */
export const PYEPICS_PRELUDE = [
  "import json, sys, time",
  "import epics",
  "from epics import ca",
  PYEPICS_FTYPE_FIX,
  "def _plain(o):",
  "    return o.tolist() if hasattr(o, 'tolist') else str(o)",
  "def out(x):",
  "    print(json.dumps(x, default=_plain), flush=True)",
  "def wait(pv, val, t=20):",
  "    end = time.time() + t",
  "    while time.time() < end:",
  "        if epics.caget(pv, use_monitor=False) == val:",
  "            return True",
  "        time.sleep(0.01)",
  "    return False",
  "",
].join("\n");

/**
 * Python lines for a script (after {@link PYEPICS_PRELUDE}) with the IOC prefix in `P` and a dict
 * `res`: waits for READY, acquires once for 0.05 s, waits until `acquire` is back at 0; sets
 * `res['ready']`, `res['done']` and `res['state']`.
 */
export const PYEPICS_ACQUIRE_ONCE = [
  "res['ready'] = wait(P + 'state', 'READY', 30)",
  "epics.caput(P + 'duration', 0.05, wait=True)",
  "epics.caput(P + 'acquire', 1, wait=True)",
  "res['done'] = wait(P + 'acquire', 0, 30)",
  "res['state'] = epics.caget(P + 'state', use_monitor=False)",
  "",
].join("\n");

/**
 * Runs `script` (after {@link PYEPICS_PRELUDE}) with `/usr/bin/python3` against a server whose UDP
 * search port is `udpPort`, in the isolated client environment. Returns exit code, output and the
 * last stdout line parsed as JSON. Afterwards kills any process left behind with the run's marker.
 */
export async function runPyepics(
  script: string,
  options: RunPyepicsOptions,
): Promise<PyepicsResult> {
  const marker = crypto.randomUUID();
  const env = {
    ...caClientEnv({ udpPort: options.udpPort, marker, repeaterPort: freeUdpPort() }),
    ...options.env,
  };
  const pythonArgs = ["-c", (options.prelude ?? PYEPICS_PRELUDE) + script, ...(options.args ?? [])];
  const runAs = options.runAs ?? [];
  const command = new Deno.Command(runAs.length > 0 ? runAs[0] : PYTHON, {
    args: runAs.length > 0 ? [...runAs.slice(1), PYTHON, ...pythonArgs] : pythonArgs,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const child = command.spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }, options.timeoutMs ?? 30_000);
  try {
    const output = await child.output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    const lines = stdout.trim().split("\n").filter((l) => l.trim() !== "");
    let json: unknown = undefined;
    if (lines.length > 0) {
      try {
        json = JSON.parse(lines[lines.length - 1]);
      } catch {
        json = undefined;
      }
    }
    return { code: timedOut ? -1 : output.code, timedOut, stdout, stderr, json };
  } finally {
    clearTimeout(timer);
    killMarkedProcesses(marker);
  }
}
