/**
 * End to end for the Harp backend: `diss-ioc --backend harp` (a subprocess, as a user runs it)
 * against the HydraHarp stand-in library, checked through real libca (pyepics): histograms equal
 * what the stand-in computed, channel metadata writes reach the device, cancel, every injected
 * library error ends in ERROR naming the call, an unplugged device is ERROR until it is back and
 * cleared; and the release permission sets: without FFI a clear error, with FFI it runs.
 */
import assert from "node:assert/strict";
import { runPyepics } from "./support/epics_env.ts";
import { startIoc } from "./support/ioc_process.ts";
import { createStandIn, expectedHistogram } from "./support/harp/standin.ts";
import { FFI_PERMISSION_FLAGS, PERMISSION_FLAGS, RUNTIME_FLAGS } from "../scripts/build.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const SETTINGS = {
  HHSTANDIN_INPUTS: "2",
  HARP_HISTO_LEN: "1024",
  HARP_BINNING: "2",
  HARP_OFFSET: "1",
  HARP_POLL_INTERVAL: "0.1",
  HARP_CTC_POLL_MS: "5",
};

Deno.test("harp e2e: histograms, metadata, cancel, faults and unplug through libca", async () => {
  const standIn = await createStandIn();
  try {
    const ioc = await startIoc(
      ["--backend", "miniquant", "--prefix", "HARP:e2e:"],
      standIn.env(SETTINGS),
    );
    try {
      const script = (body: string) =>
        runPyepics(
          `
P, CONTROL = sys.argv[1], sys.argv[2]
def control(text):
    with open(CONTROL, 'w') as f:
        f.write(text + '\\n')
def error():
    return epics.caget(P + 'error', use_monitor=False)
def wait_error(prefix, t=20):
    # the error PV is emptied by clear and set again when the new initialize fails
    end = time.time() + t
    while time.time() < end:
        text = error()
        if text.startswith(prefix):
            return text
        time.sleep(0.01)
    return error()
res = {'ready': wait(P + 'state', 'READY', 30)}
${body}
out(res)
`,
          {
            udpPort: ioc.udpPort,
            args: ["HARP:e2e:", `${standIn.folder}/control`],
            timeoutMs: 120_000,
          },
        );
      let r = await script(`
res['channels'] = list(epics.caget(P + 'channels'))
epics.caput(P + 'ch2:offset', 400, wait=True)
res['offset'] = epics.caget(P + 'ch2:offset', use_monitor=False)
epics.caput(P + 'duration', 0.3, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
res['done'] = wait(P + 'acquire', 0, 30)
for c in res['channels']:
    res[c] = {'asize': [int(epics.caget(P + c + ':asize%d' % i)) for i in range(3)],
              'image': [int(v) for v in epics.caget(P + c + ':image', use_monitor=False)]}
`);
      const log = () => ioc.lines.join("\n");
      assert.equal(r.code, 0, r.stderr + r.stdout + log());
      let res = JSON.parse(r.stdout);
      assert.equal(res.ready, true, log());
      assert.deepEqual(res.channels, ["ch1", "ch2"]);
      assert.equal(res.offset, 400);
      assert.equal(res.done, true, log());
      for (const [i, ch] of ["ch1", "ch2"].entries()) {
        assert.deepEqual(res[ch].asize, [1, 1, 1024]);
        assert.deepEqual(res[ch].image, [...await standIn.dumped(i)], `${ch} equals the dump`);
        const want = expectedHistogram({
          input: i,
          measuredMs: 300,
          binning: 2,
          offsetNs: 1,
          channelOffsetPs: i === 1 ? 400 : 0,
          bins: 1024,
        });
        assert.deepEqual(res[ch].image, [...want], `${ch} follows the documented formula`);
      }

      r = await script(`
# cancel a measurement that would never finish
control('hang')
epics.caput(P + 'duration', 5, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
res['integrating'] = wait(P + 'state', 'INTEGRATE', 10)
epics.caput(P + 'cancel', 1, wait=True)
res['cancelled'] = wait(P + 'state', 'READY', 10)
control('')

# each injected library error ends in ERROR naming the call; clear recovers
epics.caput(P + 'duration', 0.05, wait=True)
res['faults'] = {}
for call in ['ClearHistMem', 'StartMeas', 'CTCStatus', 'StopMeas', 'GetFlags', 'GetHistogram']:
    control('fail %s -17' % call)
    epics.caput(P + 'acquire', 1, wait=True)
    in_error = wait(P + 'state', 'ERROR', 10)
    text = error()
    control('')
    epics.caput(P + 'clear', 1, wait=True)
    res['faults'][call] = [in_error, text, wait(P + 'state', 'READY', 30)]

# unplugged: ERROR from the runtime poll, clear fails while gone, works once back
control('unplug')
res['unplug'] = [wait(P + 'state', 'ERROR', 10), error()]
epics.caput(P + 'clear', 1, wait=True)
gone_text = wait_error('Initialize failed')
res['still_gone'] = [wait(P + 'state', 'ERROR', 10), gone_text]
control('')
epics.caput(P + 'clear', 1, wait=True)
res['back'] = wait(P + 'state', 'READY', 30)
epics.caput(P + 'acquire', 1, wait=True)
res['after'] = [wait(P + 'acquire', 0, 30), epics.caget(P + 'state', use_monitor=False)]
`);
      assert.equal(r.code, 0, r.stderr + r.stdout + log());
      res = JSON.parse(r.stdout);
      assert.equal(res.integrating, true, log());
      assert.equal(res.cancelled, true, log());
      const calls = await standIn.calls();
      assert.ok(calls.some((l) => l.startsWith("HH_StartMeas 0 5000")), "5 s measurement");
      for (
        const [call, [inError, text, recovered]] of Object.entries(
          res.faults as Record<string, [boolean, string, boolean]>,
        )
      ) {
        assert.equal(inError, true, `${call}: ERROR; ${log()}`);
        assert.match(text as string, new RegExp(`^Acquire failed: HH_${call} failed`), call);
        assert.equal(recovered, true, `${call}: READY after clear`);
        assert.match(log(), new RegExp(`HH_${call} failed: invalid argument \\(error -17\\)`));
      }
      assert.deepEqual(res.unplug, [true, "HH_GetSyncRate failed: USB bulk read fa"]);
      assert.equal(res.still_gone[0], true);
      assert.match(res.still_gone[1], /^Initialize failed: HH_OpenDevice/);
      assert.equal(res.back, true, log());
      assert.deepEqual(res.after, [true, "READY"]);
      assert.ok(
        (await standIn.calls()).filter((l) => l.startsWith("HH_Calibrate")).length >= 2,
        "re-initialized with calibration after the unplug",
      );
    } finally {
      await ioc.stop();
    }
  } finally {
    await standIn.remove();
  }
});

Deno.test("harp e2e: the release permissions refuse FFI clearly; the FFI set runs", async () => {
  const standIn = await createStandIn();
  try {
    const env = standIn.env(SETTINGS);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSION_FLAGS, ...RUNTIME_FLAGS, MAIN, "--backend", "harp"],
      env: { ...env, EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.notEqual(out.code, 0);
    const errors = stderr.split("\n").filter((l) => l.startsWith("diss-ioc: error:"));
    assert.equal(errors.length, 1, stderr);
    assert.match(
      errors[0],
      /backend harp: loading .* needs the FFI permission: run with --allow-ffi/,
    );

    const ioc = await startIoc(["--backend", "harp", "--prefix", "HARP:ffi:"], env, 30_000, {
      denoArgs: ["run", ...FFI_PERMISSION_FLAGS, ...RUNTIME_FLAGS, MAIN],
    });
    try {
      await ioc.waitForLine(/msg="Harp initialized"/);
    } finally {
      assert.equal(await ioc.stop(), 0);
    }
  } finally {
    await standIn.remove();
  }
});
