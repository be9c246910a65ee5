/**
 * The IOC restarts itself once with the runtime's socket polling set when started without it
 * (lib/runtime_reexec.ts): the decision as plain code, and the real thing with `deno run main.ts`
 * — the child runs with both variables, SIGTERM reaches it through the parent, exit codes pass
 * through, and a child whose parent vanished stops.
 */

import assert from "node:assert/strict";
import { GLOBAL_QUEUE_ENV, IO_POLL_ENV } from "../core/io_poll.ts";
import {
  GLIBC_TUNABLES_ENV,
  HUGE_PAGES_TUNABLE,
  hugePagesStatus,
  withHugePages,
} from "../core/huge_pages.ts";
import { planReexec, REEXEC_ENV, REEXEC_PARENT_ENV } from "../lib/runtime_reexec.ts";
import { type IocProcess, startIoc } from "./support/ioc_process.ts";

const CMDLINE = [
  "deno",
  "run",
  "-A",
  "--v8-flags=--optimize-for-size",
  "main.ts",
  "--backend",
  "sim",
];
const facts = (env: Record<string, string>, more: Partial<Parameters<typeof planReexec>[0]> = {}) =>
  planReexec({ env, cmdline: CMDLINE, mayRun: true, pid: 4242, ...more });

Deno.test("reexec plan: restart with the unset variables, the same command line, the parent's PID", () => {
  assert.deepEqual(facts({}), {
    action: "restart",
    command: "/proc/self/exe",
    args: CMDLINE.slice(1),
    env: {
      [REEXEC_PARENT_ENV]: "4242",
      [IO_POLL_ENV]: "1",
      [GLOBAL_QUEUE_ENV]: "1",
      [GLIBC_TUNABLES_ENV]: HUGE_PAGES_TUNABLE,
    },
  });
  // Only what is missing is added; the user's other tunables are kept.
  assert.deepEqual(
    facts({ [IO_POLL_ENV]: "1", [GLIBC_TUNABLES_ENV]: "glibc.malloc.arena_max=2" }),
    {
      action: "restart",
      command: "/proc/self/exe",
      args: CMDLINE.slice(1),
      env: {
        [REEXEC_PARENT_ENV]: "4242",
        [GLOBAL_QUEUE_ENV]: "1",
        [GLIBC_TUNABLES_ENV]: `glibc.malloc.arena_max=2:${HUGE_PAGES_TUNABLE}`,
      },
    },
  );
  // Huge pages set off by the user: left so.
  assert.deepEqual(facts({ [GLIBC_TUNABLES_ENV]: "glibc.malloc.hugetlb=0" }), {
    action: "restart",
    command: "/proc/self/exe",
    args: CMDLINE.slice(1),
    env: { [REEXEC_PARENT_ENV]: "4242", [IO_POLL_ENV]: "1", [GLOBAL_QUEUE_ENV]: "1" },
  });
  // A compiled binary: its arguments follow argv[0].
  assert.deepEqual(
    planReexec({
      env: {},
      cmdline: ["/usr/local/bin/diss-ioc", "--backend", "eiger"],
      mayRun: true,
      pid: 7,
    }),
    {
      action: "restart",
      command: "/proc/self/exe",
      args: ["--backend", "eiger"],
      env: {
        [REEXEC_PARENT_ENV]: "7",
        [IO_POLL_ENV]: "1",
        [GLOBAL_QUEUE_ENV]: "1",
        [GLIBC_TUNABLES_ENV]: HUGE_PAGES_TUNABLE,
      },
    },
  );
});

Deno.test("huge pages: the tunable is added to GLIBC_TUNABLES unless it names hugetlb already", () => {
  assert.equal(withHugePages(undefined), HUGE_PAGES_TUNABLE);
  assert.equal(withHugePages(" "), HUGE_PAGES_TUNABLE);
  assert.equal(
    withHugePages("glibc.malloc.tcache_count=0"),
    `glibc.malloc.tcache_count=0:${HUGE_PAGES_TUNABLE}`,
  );
  assert.equal(withHugePages("glibc.malloc.hugetlb=2"), "glibc.malloc.hugetlb=2");
  assert.equal(withHugePages("a=1:glibc.malloc.hugetlb=0"), "a=1:glibc.malloc.hugetlb=0");
  // A name that only starts like it is another tunable.
  assert.equal(
    withHugePages("glibc.malloc.hugetlbx=1"),
    `glibc.malloc.hugetlbx=1:${HUGE_PAGES_TUNABLE}`,
  );
});

Deno.test("huge pages: warned about only on Linux, only when no hugetlb tunable was given", () => {
  assert.equal(hugePagesStatus({}, "darwin"), undefined);
  assert.deepEqual(hugePagesStatus({}, "linux"), { ok: false, tunables: undefined });
  assert.deepEqual(
    hugePagesStatus({ [GLIBC_TUNABLES_ENV]: "glibc.malloc.tcache_count=0" }, "linux"),
    {
      ok: false,
      tunables: "glibc.malloc.tcache_count=0",
    },
  );
  assert.equal(hugePagesStatus({ [GLIBC_TUNABLES_ENV]: HUGE_PAGES_TUNABLE }, "linux")?.ok, true);
  // The user's own choice, also off, is not second-guessed.
  assert.equal(
    hugePagesStatus({ [GLIBC_TUNABLES_ENV]: "a=1:glibc.malloc.hugetlb=0" }, "linux")?.ok,
    true,
  );
});

Deno.test("reexec plan: never twice, never against the user's choice, never without the means", () => {
  assert.deepEqual(facts({ [IO_POLL_ENV]: "1", [GLOBAL_QUEUE_ENV]: "1" }), { action: "none" });
  // The child of a restart: no second restart whatever its environment says.
  assert.deepEqual(facts({ [REEXEC_PARENT_ENV]: "12" }), { action: "none" });
  for (const no of ["no", "NO", " 0 "]) {
    assert.deepEqual(facts({ [REEXEC_ENV]: no }), { action: "skip", reason: "DISS_REEXEC=no" });
  }
  assert.equal(facts({ [REEXEC_ENV]: "yes" }).action, "restart");
  assert.deepEqual(facts({ [IO_POLL_ENV]: "61", [GLOBAL_QUEUE_ENV]: "31" }), {
    action: "skip",
    reason: "the variables were set explicitly",
  });
  assert.equal(facts({}, { cmdline: undefined }).action, "skip");
  assert.equal(facts({}, { cmdline: [] }).action, "skip");
  assert.deepEqual(facts({}, { mayRun: false }), {
    action: "skip",
    reason: "no permission to run /proc/self/exe",
  });
});

const UNSET = [IO_POLL_ENV, GLOBAL_QUEUE_ENV, GLIBC_TUNABLES_ENV];

/** Starts `deno run -A main.ts` without the runtime variables; returns the IOC and its child PID. */
async function startBare(prefix: string, env: Record<string, string> = {}) {
  const ioc = await startIoc(["--backend", "sim", "--prefix", prefix], env, 60_000, {
    unsetEnv: UNSET,
  });
  const running = await ioc.waitForLine(/msg="IOC running"/);
  return { ioc, childPid: Number(/ pid=(\d+)/.exec(running)?.[1]) };
}

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(\S+\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

/** Resolves once `pid` has exited (failure detector: rejects after `ms`). */
async function gone(pid: number, ioc: IocProcess, ms = 30_000): Promise<void> {
  const start = Date.now();
  while (alive(pid)) {
    if (Date.now() - start > ms) {
      throw new Error(`process ${pid} still there\n${ioc.lines.join("\n")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test({
  name:
    "reexec: deno run without the variables restarts once with them; SIGTERM and exit pass through",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const { ioc, childPid } = await startBare("RX1:");
    try {
      assert.ok(Number.isInteger(childPid) && childPid !== ioc.pid, ioc.lines.join("\n"));
      assert.match(
        await ioc.waitForLine(/msg="IOC running"/),
        new RegExp(`restarted_by=${ioc.pid}\\b`),
      );
      // The runtime of the child really has them (it read them at its start).
      const environ = Deno.readTextFileSync(`/proc/${childPid}/environ`).split("\0");
      assert.ok(environ.includes(`${IO_POLL_ENV}=1`) && environ.includes(`${GLOBAL_QUEUE_ENV}=1`));
      assert.ok(environ.includes(`${GLIBC_TUNABLES_ENV}=${HUGE_PAGES_TUNABLE}`), environ.join(" "));
      assert.equal(Deno.readTextFileSync(`/proc/${childPid}/stat`).split(" ")[3], String(ioc.pid));
      assert.ok(!ioc.lines.some((l) => /Sockets are polled only every few/.test(l)));
      assert.ok(!ioc.lines.some((l) => /Large buffers use 4 KB pages/.test(l)));
      // SIGTERM to the parent: the child shuts down cleanly, its exit code is the parent's.
      const code = await ioc.stop("SIGTERM");
      assert.equal(
        code,
        0,
        `child alive ${alive(childPid)} status ${JSON.stringify(await ioc.status)}\n` +
          ioc.lines.join("\n"),
      );
      assert.ok(ioc.lines.some((l) => /msg=Stopped signal=SIGTERM/.test(l)), ioc.lines.join("\n"));
      assert.equal(alive(childPid), false);
      // Exactly one restart: one IOC ran.
      assert.equal(ioc.lines.filter((l) => /msg="IOC running"/.test(l)).length, 1);
    } finally {
      await ioc.stop("SIGKILL");
    }
  },
});

Deno.test({
  name: "reexec: a child killed by a signal gives the parent's exit code 128 + n",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const { ioc, childPid } = await startBare("RX2:");
    try {
      Deno.kill(childPid, "SIGKILL");
      assert.equal((await ioc.status).code, 137);
    } finally {
      await ioc.stop("SIGKILL");
    }
  },
});

Deno.test({
  name:
    "reexec: a child whose parent is gone stops (clean shutdown), and DISS_REEXEC=no keeps one process",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const { ioc, childPid } = await startBare("RX3:");
    try {
      Deno.kill(ioc.pid, "SIGKILL");
      await gone(childPid, ioc);
      await ioc.status; // its log read to the end (the child held the pipe)
      assert.ok(
        ioc.lines.some((l) => /The parent process is gone: stopping/.test(l)),
        ioc.lines.join("\n"),
      );
      assert.ok(ioc.lines.some((l) => /msg=Stopped signal=SIGTERM/.test(l)), ioc.lines.join("\n"));
    } finally {
      await ioc.stop("SIGKILL");
      if (alive(childPid)) Deno.kill(childPid, "SIGKILL");
    }
    const single = await startIoc(
      ["--backend", "sim", "--prefix", "RX4:"],
      { [REEXEC_ENV]: "no" },
      60_000,
      {
        unsetEnv: UNSET,
      },
    );
    try {
      const running = await single.waitForLine(/msg="IOC running"/);
      assert.match(running, new RegExp(` pid=${single.pid}\\b`));
      assert.match(
        await single.waitForLine(/Sockets are polled only every few/),
        /WARN.*restart="DISS_REEXEC=no"/,
      );
      assert.doesNotMatch(running, /restarted_by=/);
      assert.match(
        await single.waitForLine(/Large buffers use 4 KB pages/),
        /WARN.*GLIBC_TUNABLES=unset recommended="glibc\.malloc\.hugetlb=1"/,
      );
    } finally {
      await single.stop();
    }
  },
});
