import assert from "node:assert/strict";
import { formatLogValue, getLog, setupLogging } from "../core/log.ts";

Deno.test("formatLogValue quotes only values that need it", () => {
  assert.equal(formatLogValue("READY"), "READY");
  assert.equal(formatLogValue(42), "42");
  assert.equal(formatLogValue("State switch"), '"State switch"');
  assert.equal(formatLogValue('say "hi"'), '"say \\"hi\\""');
  assert.equal(formatLogValue("a=b"), '"a=b"');
  assert.equal(formatLogValue(""), '""');
  assert.equal(formatLogValue(new Error("boom now")), '"boom now"');
});

Deno.test("log lines are key=value with category and level", () => {
  const lines: string[] = [];
  setupLogging({ level: "debug", write: (line) => lines.push(line) });
  getLog("controller").info("State switch", { old: "INIT", new: "WARMUP" });
  getLog("controller").trace("not shown", {});
  assert.equal(lines.length, 1);
  assert.match(
    lines[0],
    /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO diss\.controller msg="State switch" old=INIT new=WARMUP\n$/,
  );
});

/** A structured log line: `TIME LEVEL category` then only `key=value` pairs. */
const LOG_LINE = /^\d{4}-\d\d-\d\dT[\d:.]+Z [A-Z]+ [\w.]+( [\w-]+=("([^"\\]|\\.)*"|[^\s"=\\]+))*$/;

const LOG_MODULE = new URL("../core/log.ts", import.meta.url).href;

/** Runs `body` (TypeScript, after importing `core/log.ts` as `log`) in a fresh Deno; its stderr lines. */
async function runWithLog(
  body: string,
): Promise<{ code: number; lines: string[]; stderr: string }> {
  const script = `import * as log from ${JSON.stringify(LOG_MODULE)};\n${body}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  return { code: out.code, stderr, lines: stderr.split("\n").filter((l) => l !== "") };
}

Deno.test("runtime warnings (TimeoutOverflowWarning, emitWarning) become key=value lines", async () => {
  const { code, lines, stderr } = await runWithLog(`
    import process from "node:process";
    log.setupLogging();
    const t = setTimeout(() => {}, 2 ** 31); // the runtime warns and fires at once
    clearTimeout(t);
    process.emitWarning("something is old", "DeprecationWarning", "DEP0999");
    await new Promise((r) => setTimeout(r, 20));
  `);
  assert.equal(code, 0, stderr);
  for (const line of lines) assert.match(line, LOG_LINE, `not a structured line: ${line}`);
  assert.equal(lines.length, 2, stderr);
  assert.match(
    lines[0],
    /WARN diss\.runtime msg="2147483648 does not fit.*warning=TimeoutOverflowWarning$/,
  );
  assert.match(
    lines[1],
    /WARN diss\.runtime msg="something is old" warning=DeprecationWarning code=DEP0999$/,
  );
});

Deno.test("uncaught errors and rejections: one FATAL key=value line, exit 1", async () => {
  for (
    const [trigger, kind, text] of [
      [
        "setTimeout(() => { throw new Error('boom here'); }, 0);",
        "Uncaught exception",
        "Error: boom here",
      ],
      ["Promise.reject(new TypeError('nope'));", "Unhandled promise rejection", "TypeError: nope"],
    ]
  ) {
    const { code, lines, stderr } = await runWithLog(`
      log.setupLogging();
      log.routeUncaughtErrors();
      ${trigger}
      await new Promise((r) => setTimeout(r, 5000));
    `);
    assert.equal(code, 1, stderr);
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0], LOG_LINE);
    assert.ok(lines[0].includes(`FATAL diss.runtime msg="${kind}" error="${text}"`), lines[0]);
  }
});
