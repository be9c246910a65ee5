/**
 * The `eiger-sim` command line: starts on the requested ports, answers SIMPLON, stops cleanly on
 * SIGTERM; bad flags exit with code 2.
 */

import assert from "node:assert/strict";

const DENO = Deno.execPath();
const MAIN = new URL("../devices/eiger_sim/cli.ts", import.meta.url).pathname;

Deno.test("eiger sim cli: runs, answers on the printed port, exits 0 on SIGTERM", async () => {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", MAIN, "--api-port", "0", "--stream-port", "0", "--width", "16"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let apiPort = 0;
  // Safety bound only: a child that never starts is killed, which ends the read loop.
  const guard = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    while (apiPort === 0) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      const m = /EIGER simulator running.*apiPort=(\d+)/.exec(text);
      if (m) apiPort = Number(m[1]);
    }
    assert.ok(apiPort > 0, `no start line in: ${text}`);
    const res = await fetch(
      `http://127.0.0.1:${apiPort}/detector/api/1.8.0/config/x_pixels_in_detector`,
    );
    assert.equal(((await res.json()) as { value: number }).value, 16);
  } finally {
    clearTimeout(guard);
    child.kill("SIGTERM");
    const status = await child.status;
    await reader.cancel().catch(() => {});
    assert.equal(status.code, 0);
  }
});

Deno.test("eiger sim cli: bad flags exit 2, bad values exit 1", async () => {
  const run = (args: string[]) =>
    new Deno.Command(DENO, { args: ["run", "-A", MAIN, ...args], stdout: "null", stderr: "piped" })
      .output();
  const unknown = await run(["--bogus"]);
  assert.equal(unknown.code, 2);
  const bad = await run(["--api-port", "0", "--stream-port", "0", "--bit-depth", "12"]);
  assert.equal(bad.code, 1);
  assert.match(new TextDecoder().decode(bad.stderr), /bit depth must be 8, 16 or 32/);
  const leftovers = await run(["--api-port", "0", "--stream-port", "0", "--leftovers", "later"]);
  assert.equal(leftovers.code, 1);
  assert.match(
    new TextDecoder().decode(leftovers.stderr),
    /--leftovers: before-start, after-start or on-request/,
  );
});
