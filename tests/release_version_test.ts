import assert from "node:assert/strict";
import {
  describeCheckout,
  formatVersion,
  stampedDescription,
  VERSION,
  versionString,
} from "../lib/version.ts";
import denoConfig from "../deno.json" with { type: "json" };
import {
  compileArgs,
  PERMISSION_FLAGS,
  RUNTIME_FLAGS,
  SELF_RESTART_PERMISSION,
} from "../scripts/build.ts";

Deno.test("version comes from deno.json", () => {
  assert.equal(VERSION, denoConfig.version);
  assert.match(VERSION, /^\d+\.\d+\.\d+/);
});

Deno.test("formatVersion adds the git description only when there is one", () => {
  assert.equal(formatVersion("1.2.3", undefined), "1.2.3");
  assert.equal(formatVersion("1.2.3", "  "), "1.2.3");
  assert.equal(formatVersion("1.2.3", "v1.2.3-4-gabc1234"), "1.2.3 (git v1.2.3-4-gabc1234)");
});

Deno.test("an unstamped build has no stamp; a stamped one has its description", () => {
  assert.equal(stampedDescription("@@" + "DISS_BUILD_STAMP@@"), undefined);
  assert.equal(stampedDescription(""), undefined);
  assert.equal(stampedDescription("abc1234-dirty"), "abc1234-dirty");
});

Deno.test("from a git checkout the version carries git describe output", () => {
  const git = new Deno.Command("git", {
    args: ["describe", "--tags", "--always", "--dirty"],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const expected = new TextDecoder().decode(git.stdout).trim();
  assert.equal(describeCheckout(), git.success ? expected : undefined);
  assert.equal(versionString(), formatVersion(VERSION, git.success ? expected : undefined));
  assert.equal(describeCheckout("https://example.invalid/lib/version.ts"), undefined);
});

Deno.test("V8 runtime flags: the start task, the compiled binary and the permissions line carry them", async () => {
  assert.ok(RUNTIME_FLAGS.length > 0);
  const start = denoConfig.tasks.start.split(/\s+/);
  const args = compileArgs("x86_64-unknown-linux-gnu");
  for (const flag of RUNTIME_FLAGS) {
    assert.ok(start.includes(flag), `deno task start runs with ${flag}`);
    assert.ok(args.includes(flag), `deno compile bakes in ${flag}`);
    // deno parses its own flags only before the script name.
    assert.ok(start.indexOf(flag) < start.indexOf("main.ts"));
    assert.ok(args.indexOf(flag) < args.length - 1);
  }
  for (const flag of PERMISSION_FLAGS) assert.ok(args.includes(flag));
  // The binary may run itself (lib/runtime_reexec.ts); `deno run` with the listed flags may not
  // (there /proc/self/exe is Deno itself).
  assert.ok(args.includes(SELF_RESTART_PERMISSION));
  assert.ok(!PERMISSION_FLAGS.some((flag) => flag.startsWith("--allow-run")));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../scripts/build.ts", import.meta.url).pathname, "permissions"],
    stdout: "piped",
  }).output();
  const printed = new TextDecoder().decode(out.stdout).trim().split(" ");
  assert.deepEqual(printed, [...PERMISSION_FLAGS, ...RUNTIME_FLAGS]);
});
