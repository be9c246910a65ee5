/**
 * Smoke test of the whole IOC, usable by CI: starts `main.ts --backend sim` as `deno task start`
 * does (loopback-only CA, OS-assigned port, fixed SIM_SEED), waits for READY, triggers one
 * acquisition through libca (pyepics), and checks that `acquire` returns to 0 and that every
 * channel's image has asize0*asize1*asize2 elements equal to the sim's deterministic content.
 *
 * ```sh
 * ./node_modules/.bin/deno run -A scripts/smoke.ts
 * ```
 *
 * Prints `smoke: OK ...` and exits 0, or prints the problem and exits 1.
 *
 * @module
 */

import { runPyepics } from "../tests/support/epics_env.ts";
import { startIoc } from "../tests/support/ioc_process.ts";
import { resolveSimSettings, simGenerator } from "../devices/sim.ts";
import { errorMessage } from "../core/errors.ts";

const SEED = Deno.env.get("SMOKE_SIM_SEED") ?? "20261123";
const DURATION = 0.1;

async function check(): Promise<string> {
  const env = { SIM_SEED: SEED };
  const settings = resolveSimSettings(env);
  const ioc = await startIoc(["--backend", "sim"], env);
  try {
    const r = await runPyepics(
      `
P = 'DISS:'
if not wait(P + 'state', 'READY'):
    out({'error': 'IOC not READY', 'state': epics.caget(P + 'state')}); sys.exit(0)
epics.caput(P + 'duration', ${DURATION}, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
if not wait(P + 'acquire', 0):
    out({'error': 'acquire did not return to 0'}); sys.exit(0)
res = {}
for c in sys.argv[1].split(','):
    n = [int(epics.caget(P + c + ':asize%d' % i)) for i in range(3)]
    img = epics.caget(P + c + ':image', count=n[0] * n[1] * n[2], use_monitor=False)
    res[c] = {'asize': n, 'image': [float(v) for v in img]}
out(res)
`,
      { udpPort: ioc.udpPort, args: [settings.channels.join(",")] },
    );
    if (r.code !== 0) throw new Error(`pyepics failed (${r.code}): ${r.stderr}`);
    const res = r.json as Record<string, { asize: number[]; image: number[] }> & {
      error?: string;
    };
    if (res.error !== undefined) throw new Error(`${res.error}: ${JSON.stringify(res)}`);
    const gen = simGenerator(settings);
    let pixels = 0;
    settings.channels.forEach((name, c) => {
      const ch = res[name];
      if (ch === undefined) throw new Error(`channel ${name} missing`);
      const want = [settings.numImages, settings.height, settings.width];
      if (ch.asize.join() !== want.join()) throw new Error(`${name}: asize ${ch.asize} != ${want}`);
      const count = want[0] * want[1] * want[2];
      if (ch.image.length !== count) throw new Error(`${name}: ${ch.image.length} != ${count}`);
      for (let i = 0; i < settings.numImages; i++) {
        const expected = gen.image(0, i, c, DURATION);
        const offset = i * expected.length;
        for (let p = 0; p < expected.length; p++) {
          if (ch.image[offset + p] !== expected[p]) {
            throw new Error(
              `${name}: image ${i} pixel ${p} is ${ch.image[offset + p]}, expected ${expected[p]}`,
            );
          }
        }
      }
      pixels += count;
    });
    return `channels=${
      settings.channels.join(",")
    } images=${settings.numImages} size=${settings.width}x${settings.height} pixels=${pixels}`;
  } finally {
    stopCode = await ioc.stop("SIGTERM");
  }
}

let stopCode = 0;

/** Runs the smoke check; resolves to a summary, throws on any problem. */
export async function smoke(): Promise<string> {
  const summary = await check();
  if (stopCode !== 0) throw new Error(`IOC exited with ${stopCode} on SIGTERM`);
  return summary;
}

if (import.meta.main) {
  try {
    console.log(`smoke: OK ${await smoke()}`);
  } catch (err) {
    console.error(`smoke: FAILED ${errorMessage(err)}`);
    Deno.exit(1);
  }
}
