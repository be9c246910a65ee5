/**
 * Interop with independent GigE Vision implementations: `diss-ioc --backend gige` (a subprocess,
 * as a user runs it) against aravis's fake camera (`arv-fake-gv-camera-0.8 -i 127.0.0.1`), images
 * read through libca (pyepics) and compared pixel for pixel with the fake's test pattern for the
 * block the IOC logged, in Mono8 and Mono16; `arv-tool-0.8` reads back the features we wrote; with
 * packet loss (`-r`), damaged frames are errors naming the block, never torn images, and the IOC
 * acquires again after clear.
 *
 * The fake binds 127.0.0.1:3956 (one at a time), so every use of it lives in this one file, as
 * sequential steps.
 */

import assert from "node:assert/strict";
import { runPyepics } from "./support/epics_env.ts";
import { type IocProcess, startIoc } from "./support/ioc_process.ts";
import { GvcpClient } from "../devices/gige/gvcp_client.ts";

const FAKE = "arv-fake-gv-camera-0.8";
const TOOL = "arv-tool-0.8";

interface Fake {
  process: Deno.ChildProcess;
  stop(): Promise<void>;
}

/** Starts the fake camera and waits until it answers DISCOVERY (bounded). */
async function startFake(lossPerMille = 0): Promise<Fake> {
  const args = ["-i", "127.0.0.1", ...(lossPerMille > 0 ? ["-r", String(lossPerMille)] : [])];
  const process = new Deno.Command(FAKE, { args, stdout: "null", stderr: "null", stdin: "null" })
    .spawn();
  const stop = async () => {
    try {
      process.kill("SIGTERM");
    } catch {
      // exited
    }
    await process.status;
  };
  const client = new GvcpClient({ host: "127.0.0.1", port: 3956, timeoutMs: 100, attempts: 1 });
  try {
    for (let i = 0; i < 100; i++) {
      try {
        const info = await client.discover();
        if (info.model === "Fake") return { process, stop };
      } catch {
        // not up yet
      }
    }
  } finally {
    await client.close();
  }
  await stop();
  throw new Error(`${FAKE} did not answer on 127.0.0.1:3956`);
}

/** Mono8 and Mono16 pixels of the fake's pattern (defaults: GainRaw 0, exposure 10 ms). */
function pattern(width: number, height: number, block: number, mono16: boolean): number[] {
  const out: number[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      out.push(mono16 ? (256 * (x + y + block)) % 65535 : (x + y + block) % 255);
    }
  }
  return out;
}

const ACQUIRE_ONCE = `
P = sys.argv[1]
res = {'ready': wait(P + 'state', 'READY', 30)}
epics.caput(P + 'duration', 0.01, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
res['done'] = wait(P + 'acquire', 0, 30)
res['state'] = epics.caget(P + 'state', use_monitor=False)
res['asize'] = [int(epics.caget(P + 'camera:asize%d' % i)) for i in range(3)]
res['image'] = [int(v) for v in epics.caget(P + 'camera:image', use_monitor=False)]
res['pixel_format'] = epics.caget(P + 'camera:pixel_format', as_string=True)
res['gain'] = epics.caget(P + 'camera:gain')
out(res)
`;

async function acquireOnce(ioc: IocProcess, prefix: string) {
  const r = await runPyepics(ACQUIRE_ONCE, {
    udpPort: ioc.udpPort,
    args: [prefix],
    timeoutMs: 60_000,
  });
  assert.equal(r.code, 0, r.stderr + r.stdout + ioc.lines.join("\n"));
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

function loggedBlocks(ioc: IocProcess): number[] {
  const line = ioc.lines.filter((l) => /msg="Acquisition done"/.test(l)).at(-1) ?? "";
  const m = /blocks=(\S+)/.exec(line);
  return m === null ? [] : m[1].replace(/"/g, "").split(",").map(Number);
}

function arvTool(...args: string[]): string {
  const out = new Deno.Command(TOOL, { args: ["-a", "127.0.0.1", ...args] }).outputSync();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

Deno.test("gige interop: IOC against the aravis fake camera, read by pyepics and arv-tool", async (t) => {
  let fake = await startFake();
  try {
    for (const [format, mono16] of [["Mono8", false], ["Mono16", true]] as const) {
      await t.step(
        `${format}: pixels equal the fake's test pattern for the logged block`,
        async () => {
          const prefix = `GIG:${format}:`;
          // The fake sends no test packets: the packet size falls back to GIGE_PACKET_SIZE
          // (Mono16 here), else the fake's own 1400, with a log line saying so.
          const packetSize = mono16 ? 4000 : 1400;
          const ioc = await startIoc(["--backend", "gige", "--prefix", prefix], {
            GIGE_DEVICE_HOST: "127.0.0.1",
            GIGE_FEATURES: `Width=40;Height=24;PixelFormat=${format};GainRaw=0`,
            ...(mono16 ? { GIGE_PACKET_SIZE: "4000" } : {}),
          });
          try {
            const res = await acquireOnce(ioc, prefix);
            assert.equal(res.ready, true, ioc.lines.join("\n"));
            assert.equal(res.done, true, ioc.lines.join("\n"));
            assert.equal(res.state, "READY");
            assert.deepEqual(res.asize, [1, 24, 40]);
            assert.equal(res.pixel_format, format);
            assert.equal(res.gain, 0);
            const [block] = loggedBlocks(ioc);
            assert.ok(block > 0, ioc.lines.join("\n"));
            assert.deepEqual(res.image, pattern(40, 24, block, mono16));
            const fallback = ioc.lines.find((l) => /Camera sent no test packet/.test(l)) ?? "";
            assert.match(
              fallback,
              new RegExp(`packet_size=${packetSize}\\b`),
              ioc.lines.join("\n"),
            );
            const channel = ioc.lines.find((l) => /Stream channel open/.test(l)) ?? "";
            assert.match(channel, new RegExp(`packet_size=${packetSize}\\b`));
            // Run with -A: the stream is read in batches (recvmmsg), the frames above through it.
            assert.match(channel, /receive=batch\b/, channel);
            assert.equal(await ioc.stop("SIGTERM"), 0);
          } finally {
            await ioc.stop("SIGKILL");
          }
        },
      );
    }

    await t.step(
      "arv-tool reads back the features the IOC wrote (after the IOC released control)",
      () => {
        const text = arvTool("control", "Width", "Height", "PixelFormat", "ExposureTimeAbs");
        assert.match(text, /Width = 40\b/, text);
        assert.match(text, /Height = 24\b/, text);
        assert.match(text, /PixelFormat = Mono16\b/, text);
        assert.match(text, /ExposureTimeAbs = 10000\b/, text); // duration 0.01 s → 10000 µs
      },
    );

    await t.step("`pylon` alias and a feature value out of range refused, naming it", async () => {
      const prefix = "GIG:bad:";
      const ioc = await startIoc(["--backend", "pylon", "--prefix", prefix], {
        GIGE_DEVICE_HOST: "127.0.0.1",
        GIGE_FEATURES: "Width=64;GainRaw=11",
      });
      try {
        await ioc.waitForLine(
          /GIGE_FEATURES GainRaw=11 refused: GainRaw: 11 is out of range 0..10/,
        );
      } finally {
        await ioc.stop("SIGKILL");
      }
    });

    await fake.stop();
    fake = await startFake(150);
    await t.step(
      "packet loss (-r 150): error names the block, no torn image, acquires after clear",
      async () => {
        const prefix = "GIG:loss:";
        const ioc = await startIoc(["--backend", "gige", "--prefix", prefix], {
          GIGE_DEVICE_HOST: "127.0.0.1",
          // 64x64 Mono8 at 1400-byte packets: 6 packets, about 38 % of frames arrive whole.
          GIGE_FEATURES: "Width=64;Height=64;PixelFormat=Mono8",
          GIGE_RESEND_WINDOW: "60",
        });
        try {
          const r = await runPyepics(
            `
P = sys.argv[1]
res = {'ready': wait(P + 'state', 'READY', 30), 'runs': []}
epics.caput(P + 'duration', 0.01, wait=True)
for i in range(40):
    img_before = [int(v) for v in epics.caget(P + 'camera:image', use_monitor=False)]
    epics.caput(P + 'acquire', 1, wait=True)
    wait(P + 'acquire', 0, 20)
    end = time.time() + 20
    state = epics.caget(P + 'state', use_monitor=False)
    while state not in ('READY', 'ERROR') and time.time() < end:
        time.sleep(0.01)
        state = epics.caget(P + 'state', use_monitor=False)
    run = {'state': state}
    img = [int(v) for v in epics.caget(P + 'camera:image', use_monitor=False)]
    run['image_unchanged'] = img == img_before
    run['image'] = img if state == 'READY' else None
    if state == 'ERROR':
        run['error'] = epics.caget(P + 'error', as_string=True, use_monitor=False)
        epics.caput(P + 'clear', 1, wait=True)
        run['ready_after_clear'] = wait(P + 'state', 'READY', 20)
    res['runs'].append(run)
    if any(r['state'] == 'ERROR' for r in res['runs']) and state == 'READY':
        break
out(res)
`,
            { udpPort: ioc.udpPort, args: [prefix], timeoutMs: 240_000 },
          );
          assert.equal(r.code, 0, r.stderr + r.stdout + ioc.lines.join("\n"));
          const res = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
          assert.equal(res.ready, true);
          const runs = res.runs as {
            state: string;
            image_unchanged: boolean;
            image: number[] | null;
            error?: string;
            ready_after_clear?: boolean;
          }[];
          const failed = runs.filter((x) => x.state === "ERROR");
          assert.ok(failed.length > 0, "some frame was damaged by the loss");
          // The error PV is a 40-character EPICS string; the full message is in the IOC's log.
          assert.ok(
            ioc.lines.some((l) => /block \d+ incomplete: missing packets [\d,-]+ of 6/.test(l)),
            ioc.lines.join("\n"),
          );
          for (const f of failed) {
            assert.match(f.error!, /^Acquire failed: block \d+/, f.error);
            assert.equal(f.image_unchanged, true, "never a torn image");
            assert.equal(f.ready_after_clear, true);
          }
          const last = runs.at(-1)!;
          assert.equal(last.state, "READY", "acquires again after clear");
          const blocks = loggedBlocks(ioc);
          assert.deepEqual(
            last.image,
            pattern(64, 64, blocks[0], false),
            "the whole frame is exact",
          );
        } finally {
          await ioc.stop("SIGKILL");
        }
      },
    );
  } finally {
    await fake.stop();
  }
});
