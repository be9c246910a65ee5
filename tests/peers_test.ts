/**
 * `scripts/peers.sh`: the one list of Debian peers the suite needs, installed by `npm test` and
 * `.ci/run`. The install paths run against stand-in `dpkg-query`/`apt-get`/`id`/`sudo` commands.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const SCRIPT = new URL("scripts/peers.sh", ROOT).pathname;

function run(args: string[], env: Record<string, string> = {}) {
  const out = new Deno.Command("bash", {
    args: [SCRIPT, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const PEERS = run(["list"]).stdout.trim().split("\n");

/**
 * A directory of stand-in commands: `dpkg-query` reports everything installed except the
 * packages in the file `absent` (which `apt-get install` empties and logs to `apt.log`); `id -u`
 * prints `uid`; `sudo` exists only when `sudo` is given ("ok": works, "fails": refuses).
 */
function fakeSystem(options: { uid: number; absent: string[]; sudo?: "ok" | "fails" }) {
  const dir = Deno.makeTempDirSync({ prefix: "peers_test_" });
  const write = (name: string, text: string) => {
    Deno.writeTextFileSync(`${dir}/${name}`, text);
    Deno.chmodSync(`${dir}/${name}`, 0o755);
  };
  Deno.writeTextFileSync(`${dir}/absent`, options.absent.map((p) => `${p}\n`).join(""));
  write(
    "dpkg-query",
    `#!/bin/bash\npkg=\${@: -1}\nif grep -qx "$pkg" ${dir}/absent; then printf 'rc '; else printf 'ii '; fi\n`,
  );
  write(
    "apt-get",
    `#!/bin/bash\necho "apt-get $* uid=$(${dir}/id -u)" >> ${dir}/apt.log\n` +
      `[ "$1" = install ] && : > ${dir}/absent\nexit 0\n`,
  );
  write("id", `#!/bin/bash\necho ${options.uid}\n`);
  if (options.sudo === "ok") {
    write("sudo", `#!/bin/bash\n[ "$1" = -n ] && shift\n[ "$1" = true ] && exit 0\nexec "$@"\n`);
  } else if (options.sudo === "fails") {
    write("sudo", `#!/bin/bash\nexit 1\n`);
  }
  const log = () => {
    try {
      return Deno.readTextFileSync(`${dir}/apt.log`);
    } catch {
      return "";
    }
  };
  return {
    env: { PATH: `${dir}:/usr/bin:/bin` },
    log,
    cleanup: () => Deno.removeSync(dir, { recursive: true }),
  };
}

Deno.test("peers: the list holds the interop peers and is the only list (.ci/run, npm test)", () => {
  for (
    const p of ["python3-pyepics", "python3-zmq", "python3-cbor2", "python3-lz4", "bitshuffle"]
  ) {
    assert.ok(PEERS.includes(p), `${p} missing from scripts/peers.sh`);
  }
  for (const p of ["libca-dev", "libsixel-bin", "imagemagick", "gcc", "python3-numpy", "git"]) {
    assert.ok(PEERS.includes(p), `${p} missing from scripts/peers.sh`);
  }
  const pkg = JSON.parse(Deno.readTextFileSync(new URL("package.json", ROOT)));
  assert.match(pkg.scripts.test, /^bash scripts\/peers\.sh install && /);
  const ci = Deno.readTextFileSync(new URL(".ci/run", ROOT));
  assert.match(ci, /bash scripts\/peers\.sh install/);
  assert.doesNotMatch(ci, /python3-pyepics|APT_PACKAGES/, ".ci/run keeps its own package list");
});

function dpkg(args: string[]): string | undefined {
  const out = new Deno.Command("dpkg-query", { args, stdout: "piped", stderr: "null" })
    .outputSync();
  return out.success ? new TextDecoder().decode(out.stdout) : undefined;
}

/** The package owning a program (tried as found on PATH, resolved, and under /bin: usrmerge). */
function owningPackage(program: string): string | undefined {
  const path = program.startsWith("/") ? program : `/usr/bin/${program}`;
  const real = Deno.realPathSync(path);
  for (const candidate of [path, real, real.replace(/^\/usr\/bin\//, "/bin/")]) {
    const text = dpkg(["-S", candidate]);
    if (text !== undefined) return text.split(":")[0];
  }
  return undefined;
}

function isEssential(pkg: string): boolean {
  return dpkg(["-W", "-f", "${Essential}", pkg])?.trim() === "yes";
}

Deno.test("peers: every external program a test runs comes from a listed package", () => {
  const programs = new Set<string>();
  for (const entry of Deno.readDirSync(new URL("tests/", ROOT))) {
    if (!entry.name.endsWith(".ts")) continue;
    const text = Deno.readTextFileSync(new URL(`tests/${entry.name}`, ROOT));
    for (const m of text.matchAll(/new Deno\.Command\(\s*"([^"]+)"/g)) programs.add(m[1]);
  }
  programs.delete("bash"); // essential on Debian, runs this script itself
  assert.ok(programs.has("gcc") && programs.has("convert"), [...programs].join(" "));
  for (const program of programs) {
    const pkg = owningPackage(program);
    assert.ok(pkg !== undefined, `no package owns ${program}`);
    if (isEssential(pkg)) continue; // on every Debian system (coreutils, bash)
    // Versioned binary packages (gcc-12, imagemagick-6.q16, python3.11-minimal) come in through
    // the listed package that depends on them.
    const listed = PEERS.some((p) => pkg === p || pkg.startsWith(`${p}-`) || pkg.startsWith(p));
    assert.ok(listed, `${program} (${pkg}) is not covered by scripts/peers.sh`);
  }
});

Deno.test("peers: nothing missing → no install attempted", () => {
  const sys = fakeSystem({ uid: 1000, absent: [] });
  try {
    const r = run(["install"], sys.env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sys.log(), "");
    assert.equal(r.stderr, "");
  } finally {
    sys.cleanup();
  }
});

Deno.test("peers: as root, apt-get installs exactly the missing packages (removed = 'rc')", () => {
  const sys = fakeSystem({ uid: 0, absent: ["libsixel-bin", "python3-lz4"] });
  try {
    const r = run(["install"], sys.env);
    assert.equal(r.code, 0, r.stderr);
    const lines = sys.log().trim().split("\n");
    assert.equal(lines.length, 2);
    assert.match(lines[0], /^apt-get update/);
    assert.match(lines[1], /^apt-get install .*python3-lz4 libsixel-bin uid=0$/);
    assert.match(r.stderr, /installing Debian packages: python3-lz4 libsixel-bin/);
  } finally {
    sys.cleanup();
  }
});

Deno.test("peers: not root → through sudo", () => {
  const sys = fakeSystem({ uid: 1000, absent: ["imagemagick"], sudo: "ok" });
  try {
    const r = run(["install"], sys.env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(sys.log(), /apt-get install .*imagemagick/);
  } finally {
    sys.cleanup();
  }
});

Deno.test("peers: neither root nor sudo → one line naming the packages, exit 1", () => {
  const sys = fakeSystem({ uid: 1000, absent: ["imagemagick", "gcc"], sudo: "fails" });
  try {
    const r = run(["install"], sys.env);
    assert.equal(r.code, 1);
    assert.equal(sys.log(), "", "nothing may be installed");
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      /missing Debian packages: gcc imagemagick .*apt-get install -y gcc imagemagick$/,
    );
  } finally {
    sys.cleanup();
  }
});
