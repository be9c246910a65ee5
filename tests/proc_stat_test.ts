/** Parsing `/proc/.../stat` lines (core/proc_stat.ts). */

import assert from "node:assert/strict";
import { parseProcStat } from "../core/proc_stat.ts";

Deno.test("proc stat: CPU time and minor faults, whatever the command name holds", () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  const line = "4242 (a) (b c)) S 1 4242 4242 0 -1 4194304 1234 0 5 0 17 8 0 0 20 0 9";
  assert.deepEqual(parseProcStat(line), { cpuMs: 250, minorFaults: 1234 });
  const malformed = parseProcStat("4242 (deno");
  assert.ok(Number.isNaN(malformed.cpuMs) && Number.isNaN(malformed.minorFaults));
});

Deno.test("proc stat: this process's own line reads as whole counts that do not go back", () => {
  if (Deno.build.os !== "linux") return;
  const before = parseProcStat(Deno.readTextFileSync("/proc/self/stat"));
  const after = parseProcStat(Deno.readTextFileSync(`/proc/${Deno.pid}/stat`));
  for (const stat of [before, after]) {
    assert.ok(Number.isInteger(stat.cpuMs) && stat.cpuMs >= 0, JSON.stringify(stat));
    assert.ok(Number.isInteger(stat.minorFaults) && stat.minorFaults > 0, JSON.stringify(stat));
  }
  assert.ok(after.cpuMs >= before.cpuMs && after.minorFaults >= before.minorFaults);
});
