/**
 * `diss-ioc view --backend NAME`: the controller and backend run with the viewer as application
 * (auto-acquire), as the original diss-view did.
 */

import assert from "node:assert/strict";
import { EXIT, runView } from "../lib/view/app.ts";
import { fakeTerminal } from "./support/view_terminal.ts";

Deno.test("view --backend sim: auto-acquires and shows each series", async () => {
  const term = fakeTerminal({ input: false, cols: 120, rows: 40 });
  const messages: string[] = [];
  const code = await runView(
    ["--backend", "sim", "--auto-acquire", "0.05", "--frames", "2", "--output", "halfblock"],
    {
      io: term,
      env: {
        SIM_CHANNELS: "alpha,beta",
        SIM_IMAGE_SIZE: "48x32",
        SIM_NUM_IMAGES: "3",
        SIM_SEED: "7",
        SIM_PIXEL_TYPE: "uint16",
      },
      message: (m) => messages.push(m),
    },
  );
  assert.equal(code, EXIT.OK, messages.join("\n"));
  const text = term.text();
  assert.ok(text.includes("alpha") && text.includes("beta"));
  assert.ok(text.includes("\u2580"));
  const status = text.split("\x1b[7m").at(-1)!;
  assert.ok(status.includes("48x32") && status.includes("img=1/3"), status);
  assert.ok(/ssqcnt=\d+/.test(status), status);
});

Deno.test("view --backend: an unknown backend is a usage error", async () => {
  const messages: string[] = [];
  const code = await runView(["--backend", "nope", "--output", "halfblock"], {
    io: fakeTerminal({ input: false }),
    env: {},
    message: (m) => messages.push(m),
  });
  assert.equal(code, EXIT.USAGE);
  assert.match(messages.join("\n"), /cannot load backend nope/);
});
