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
