import assert from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };

const DENO = new URL("../node_modules/.bin/deno", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function run(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", MAIN, ...args],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", NO_COLOR: "1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("cli: bad input -> one stderr line, exit 2, nothing started", async () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--backend", "nosuch"], {}, /unknown backend "nosuch"/],
    [[], {}, /no backend given/],
    [["--backend", "sim", "--prefix", ""], {}, /PV prefix must not be empty/],
    [["--backend", "sim", "--prefix", "A B:"], {}, /without spaces/],
    [["--backend", "sim"], { DISS_AUTO_ACQUIRE: "often" }, /DISS_AUTO_ACQUIRE="often"/],
    [["--backend", "sim", "--auto-acquire=-3"], {}, /--auto-acquire="-3"/],
    [["--backend", "sim", "--overdue", "-5"], {}, /--overdue="-5": must not be negative/],
    [["--backend", "sim", "--auto-acquire", "-1"], {}, /--auto-acquire="-1": must not be neg/],
    [["--backend", "sim", "--overdue", "1e999"], {}, /--overdue="1e999": must be finite/],
    [
      ["--backend", "sim"],
      { EPICS_CAS_SERVER_PORT: "99999" },
      /EPICS_CAS_SERVER_PORT="99999": expected a port number 1-65535/,
    ],
    [
      ["--backend", "sim"],
      { EPICS_CAS_SERVER_PORT: "abc" },
      /EPICS_CAS_SERVER_PORT="abc": expected a port/,
    ],
    [["--backend", "sim"], { EPICS_CA_SERVER_PORT: "-1" }, /EPICS_CA_SERVER_PORT="-1"/],
    [["--backend", "sim"], { EPICS_CAS_BEACON_PORT: "70000" }, /EPICS_CAS_BEACON_PORT="70000"/],
    [["--backend", "sim"], { DISS_WRITE_HOSTS: " " }, /DISS_WRITE_HOSTS: empty list/],
    [["--backend", "sim", "--write-hosts", "a/b"], {}, /--write-hosts: "a\/b" is not a host/],
    [["--backend", "sim"], { SIM_NUM_IMAGES: "many" }, /backend sim: SIM_NUM_IMAGES=many/],
    [["--backend", "sim"], { SIM_IMAGE_SIZE: "12" }, /SIM_IMAGE_SIZE=12: expected WxH/],
    [["--backend", "./nope.ts:Dev"], {}, /cannot load backend module \.\/nope\.ts/],
  ];
  const results = await Promise.all(cases.map(([argv, env]) => run(argv, env)));
  results.forEach((r, i) => {
    const [argv, env, message] = cases[i];
    const what = `${argv.join(" ")} ${JSON.stringify(env)}`;
    assert.equal(r.code, 2, what + r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
    assert.match(lines[0], /^diss-ioc: error: /);
    assert.match(lines[0], message);
    assert.equal(r.stdout, "");
  });
});

Deno.test("cli: --help, --version, --list-pvs", async () => {
  const [help, version, list] = await Promise.all([
    run(["--help"]),
    run(["--version"]),
    run(["--backend", "sim", "--prefix", "L:", "--list-pvs", "--log-level", "error"], {
      SIM_CHANNELS: "c1,c2",
      SIM_NUM_IMAGES: "1",
      SIM_IMAGE_SIZE: "16x8",
    }),
  ]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: diss-ioc/);
  assert.equal(version.code, 0);
  assert.ok(version.stdout.includes(denoConfig.version));
  assert.equal(list.code, 0, list.stderr);
  const names = list.stdout.trim().split("\n");
  assert.deepEqual(names.slice(0, 9), [
    "L:state",
    "L:ssqcnt",
    "L:uuid",
    "L:numid",
    "L:acquire",
    "L:duration",
    "L:cancel",
    "L:clear",
    "L:error",
  ]);
  assert.ok(names.includes("L:c2:image") && names.includes("L:c1:enerj"));
  assert.deepEqual(names.slice(-2), ["L:start_ts", "L:acq_td"]);
});
