/**
 * End-to-end checks of what an operator meets first: `npm start` shows images flowing, long
 * durations integrate instead of failing (and the runtime prints nothing outside the structured
 * log), and `DISS_WRITE_HOSTS` gives unlisted clients read-only access, seen through pyepics.
 */
import assert from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };
import { runPyepics } from "./support/epics_env.ts";
import { startIoc } from "./support/ioc_process.ts";

const SIM_ENV = {
  SIM_SEED: "5",
  SIM_CHANNELS: "c1",
  SIM_NUM_IMAGES: "1",
  SIM_IMAGE_SIZE: "8x4",
  SIM_PIXEL_TYPE: "uint16",
};

/** A structured log line: `TIME LEVEL category` then only `key=value` pairs. */
const LOG_LINE = /^\d{4}-\d\d-\d\dT[\d:.]+Z [A-Z]+ [\w.]+( [\w-]+=("([^"\\]|\\.)*"|[^\s"=\\]+))*$/;

Deno.test("e2e: the README's start command (npm start) acquires by itself, once a second", async () => {
  const task = denoConfig.tasks.start.split(/\s+/);
  const args = task.slice(task.indexOf("main.ts") + 1);
  assert.deepEqual(args.slice(args.indexOf("--auto-acquire"), args.indexOf("--auto-acquire") + 2), [
    "--auto-acquire",
    "1",
  ]);
  const ioc = await startIoc(args, SIM_ENV);
  try {
    // Nobody writes anything: two acquisitions follow each other.
    await ioc.waitForLine(/msg=Acquire .*ssqcnt=0/, 30_000);
    await ioc.waitForLine(/msg=Acquire .*ssqcnt=1/, 30_000);
  } finally {
    assert.equal(await ioc.stop("SIGTERM"), 0);
  }
});

Deno.test("e2e: duration 3e6 s and 1e308 s integrate (no ERROR) until cancelled; log stays structured", async () => {
  const ioc = await startIoc(["--backend", "sim", "--prefix", "LONG:"], SIM_ENV);
  let code: number | undefined;
  try {
    const r = await runPyepics(
      `
P = sys.argv[1]
res = {}
for d in (3e6, 1e308):
    epics.caput(P + 'duration', d, wait=True)
    epics.caput(P + 'acquire', 1, wait=True)
    ok = wait(P + 'state', 'INTEGRATE')
    time.sleep(0.3)  # a timer overflowing to 1 ms would have fired long before
    res[str(d)] = [ok, epics.caget(P + 'state', use_monitor=False),
                   epics.caget(P + 'error', use_monitor=False)]
    epics.caput(P + 'cancel', 1, wait=True)
    res[str(d)].append(wait(P + 'state', 'READY'))
out(res)
`,
      { udpPort: ioc.udpPort, args: ["LONG:"] },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(r.json, {
      "3000000.0": [true, "INTEGRATE", "", true],
      "1e+308": [true, "INTEGRATE", "", true],
    });
  } finally {
    code = await ioc.stop("SIGTERM");
  }
  assert.equal(code, 0);
  const stray = ioc.lines.filter((line) => !LOG_LINE.test(line));
  assert.deepEqual(stray, [], "every line on stderr is a key=value log line");
  assert.ok(!ioc.lines.some((l) => /Overflow|timed out| ERROR /.test(l)), ioc.lines.join("\n"));
});

/** The user name libca announces: the password entry of our uid, as `getpwuid(getuid())`. */
function userName(uid: number): string {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const [name, , id] = line.split(":");
    if (Number(id) === uid) return name;
  }
  throw new Error(`no passwd entry for uid ${uid}`);
}

const WRITE_PROBE = `
P = sys.argv[1]
pv = epics.PV(P + 'duration')
pv.wait_for_connection(10)
# Rights as libca holds them (the server sends them before the channel is connected); PV's own
# copy comes from a callback that can race with PV.__init__ under load.
read, write = bool(ca.read_access(pv.chid)), bool(ca.write_access(pv.chid))
try:
    status = ca.put(pv.chid, 2.5, wait=True, timeout=10)
except Exception as e:
    status = type(e).__name__
out({'read': read, 'write': write, 'status': str(status),
     'value': epics.caget(P + 'duration', use_monitor=False)})
`;

Deno.test("e2e: DISS_WRITE_HOSTS: a listed client writes, others are read-only (pyepics)", async () => {
  const me = userName(Deno.uid()!);
  const host = Deno.hostname();
  const cases: [string, string, string[], boolean][] = [
    ["listed user@address", `${me}@127.0.0.1`, [], true],
    ["listed host name", `${host}`, [], true],
    [
      "other user, other host, other address",
      `not-${me}@127.0.0.1,${me}@x-${host},192.0.2.7`,
      [],
      false,
    ],
  ];
  if (Deno.uid() === 0) {
    // The same list, but the client runs as another user (libca announces "nobody").
    cases.push([
      "listed address, unlisted user",
      `${me}@127.0.0.1`,
      ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
      false,
    ]);
  }
  for (const [what, list, runAs, allowed] of cases) {
    const ioc = await startIoc(["--backend", "sim", "--prefix", "WH:"], {
      ...SIM_ENV,
      DISS_WRITE_HOSTS: list,
    });
    try {
      await ioc.waitForLine(/msg="Write access only for"/);
      const r = await runPyepics(WRITE_PROBE, { udpPort: ioc.udpPort, args: ["WH:"], runAs });
      assert.equal(r.code, 0, `${what}: ${r.stderr}${r.stdout}`);
      const res = r.json as { read: boolean; write: boolean; status: string; value: number };
      assert.equal(res.read, true, what);
      assert.equal(res.write, allowed, `${what}: write access`);
      assert.equal(res.value, allowed ? 2.5 : 1, `${what}: value after the write`);
      if (allowed) assert.equal(res.status, "1", what);
      else assert.notEqual(res.status, "1", `${what}: the write must fail (${res.status})`);
    } finally {
      assert.equal(await ioc.stop("SIGTERM"), 0);
    }
  }
});
