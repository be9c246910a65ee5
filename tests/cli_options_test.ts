import assert from "node:assert/strict";
import { ConfigError, DEFAULT_PREFIX, parseAutoAcquire, parseIocOptions } from "../lib/config.ts";
import { BackendError, moduleUrl, resolveBackend, splitBackendSpec } from "../devices/registry.ts";
import { SimDevice } from "../devices/sim.ts";

Deno.test("options: --pva on|off and DISS_PVA, flag over env, bad words refused", () => {
  assert.equal(parseIocOptions(["--backend", "sim", "--pva", "off"], {}).pva, false);
  assert.equal(parseIocOptions(["--backend", "sim"], { DISS_PVA: "off" }).pva, false);
  assert.equal(parseIocOptions(["--backend", "sim", "--pva", "on"], { DISS_PVA: "off" }).pva, true);
  assert.throws(
    () => parseIocOptions(["--backend", "sim"], { DISS_PVA: "maybe" }),
    (e) => e instanceof ConfigError && /DISS_PVA="maybe": expected on or off/.test(e.message),
  );
});

Deno.test("options: defaults, env, and flags overriding env", () => {
  const base = parseIocOptions(["--backend", "sim"], {});
  assert.deepEqual(base, {
    backend: "sim",
    prefix: DEFAULT_PREFIX,
    prefixGiven: false,
    autoAcquire: undefined,
    overdue: undefined,
    stackRefresh: undefined,
    uint32As: "double",
    pva: true,
    pvaForward: true,
    logLevel: "info",
    writeHosts: undefined,
    listPvs: false,
    help: false,
    version: false,
  });
  const env = {
    DISS_DEVICE_BACKEND: "x:Y",
    DISS_EPICS_PREFIX: "DISS:env:",
    DISS_AUTO_ACQUIRE: "yes",
    DISS_ACQUIRE_OVERDUE: "30",
    DISS_STACK_REFRESH: "0",
    DISS_LOG_LEVEL: "debug",
    DISS_UINT32_AS: "LONG",
  };
  const fromEnv = parseIocOptions([], env);
  assert.equal(fromEnv.backend, "x:Y");
  assert.equal(fromEnv.prefix, "DISS:env:");
  assert.equal(fromEnv.autoAcquire, 1);
  assert.equal(fromEnv.overdue, 30);
  assert.equal(fromEnv.stackRefresh, 0, "DISS_STACK_REFRESH=0: off");
  assert.equal(fromEnv.logLevel, "debug");
  assert.equal(fromEnv.uint32As, "long");
  const flags = parseIocOptions(
    [
      "--backend=sim",
      "--prefix",
      "P:",
      "--auto-acquire",
      "0.5",
      "--overdue",
      "0",
      "--log-level",
      "warn",
      "--uint32-as",
      "double",
    ],
    env,
  );
  assert.equal(flags.backend, "sim");
  assert.equal(flags.prefix, "P:");
  assert.equal(flags.autoAcquire, 0.5);
  assert.equal(flags.overdue, 0);
  assert.equal(flags.logLevel, "warning");
  assert.equal(flags.uint32As, "double");
  assert.throws(
    () => parseIocOptions(["--backend", "sim", "--uint32-as", "float"], {}),
    /--uint32-as="float": expected double or long/,
  );
  assert.throws(
    () => parseIocOptions(["--backend", "sim"], { DISS_UINT32_AS: "int" }),
    /DISS_UINT32_AS="int": expected double or long/,
  );
});

Deno.test("options: auto-acquire words", () => {
  for (const off of ["no", "nope", "false", "0", "", "OFF"]) {
    assert.equal(parseAutoAcquire(off, "X"), undefined, off);
  }
  assert.equal(parseAutoAcquire("1", "X"), 1);
  assert.equal(parseAutoAcquire("yes", "X"), 1);
  assert.equal(parseAutoAcquire("2.5", "X"), 2.5);
  assert.throws(() => parseAutoAcquire("-1", "X"), ConfigError);
  assert.throws(() => parseAutoAcquire("fast", "X"), /X="fast": expected a number of seconds/);
});

Deno.test("options: bad input gives one-line ConfigErrors", () => {
  const bad: [string[], Record<string, string>, RegExp][] = [
    [[], {}, /no backend given/],
    [["--backend", ""], {}, /must not be empty/],
    [["--backend", "sim", "--prefix", ""], {}, /must not be empty/],
    [["--backend", "sim", "--prefix", "A B:"], {}, /printable ASCII without spaces/],
    [["--backend", "sim"], { DISS_EPICS_PREFIX: "" }, /DISS_EPICS_PREFIX: the PV prefix/],
    [["--backend", "sim"], { DISS_EPICS_PREFIX: "a\tb" }, /DISS_EPICS_PREFIX=/],
    [["--backend", "sim", "--auto-acquire", "x"], {}, /--auto-acquire="x"/],
    [["--backend", "sim"], { DISS_AUTO_ACQUIRE: "1s" }, /DISS_AUTO_ACQUIRE="1s"/],
    [["--backend", "sim", "--overdue", "NaN"], {}, /--overdue="NaN"/],
    [["--backend", "sim"], { DISS_ACQUIRE_OVERDUE: "-2" }, /DISS_ACQUIRE_OVERDUE="-2"/],
    [["--backend", "sim"], { DISS_STACK_REFRESH: "often" }, /DISS_STACK_REFRESH="often"/],
    [["--backend", "sim", "--log-level", "loud"], {}, /--log-level="loud": expected one of/],
    [["--backend", "sim", "--frobnicate"], {}, /Unknown option '--frobnicate'/],
    [["--backend", "sim", "extra"], {}, /positional/],
  ];
  for (const [argv, env, message] of bad) {
    assert.throws(() => parseIocOptions(argv, env), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, message);
      assert.ok(!err.message.includes("\n"), "one line");
      return true;
    }, argv.join(" "));
  }
});

Deno.test("registry: built-in names, module:Class specs, bad specs", async () => {
  assert.equal(await resolveBackend("sim"), SimDevice);
  assert.deepEqual(splitBackendSpec("./my.ts:Det"), { module: "./my.ts", className: "Det" });
  assert.deepEqual(splitBackendSpec("file:///x/y.ts:Det"), {
    module: "file:///x/y.ts",
    className: "Det",
  });
  assert.equal(splitBackendSpec("nocolon"), undefined);
  assert.equal(moduleUrl("./a/b.ts", "/tmp/x"), "file:///tmp/x/a/b.ts");
  assert.equal(moduleUrl("/abs/b.ts", "/tmp/x"), "file:///abs/b.ts");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/dev.ts`,
      `export class Good { isInitialized() { return true } getConfig() { return undefined }
        async initialize() {} async acquire() {} async cancel() {} }
       export class Bad { hello() {} }
       export const notAClass = 3;`,
    );
    const good = await resolveBackend("./dev.ts:Good", dir);
    assert.equal(good.name, "Good");
    await assert.rejects(resolveBackend("eigerr"), /unknown backend "eigerr": use one of sim/);
    await assert.rejects(resolveBackend("./missing.ts:X", dir), /cannot load backend module/);
    await assert.rejects(resolveBackend("./dev.ts:Nope", dir), /has no export Nope \(exports: /);
    await assert.rejects(resolveBackend("./dev.ts:Bad", dir), /not a device backend class/);
    await assert.rejects(resolveBackend("./dev.ts:notAClass", dir), BackendError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
