import assert from "node:assert/strict";
import {
  describeCheckout,
  formatVersion,
  stampedDescription,
  VERSION,
  versionString,
} from "../lib/version.ts";
import denoConfig from "../deno.json" with { type: "json" };

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
