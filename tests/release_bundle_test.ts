/**
 * Release smoke test: build the single-file bundle, run it from an empty temporary folder with
 * the release permission set (not -A) and the sim backend, acquire through real libca (pyepics),
 * then stop it with SIGTERM and expect exit 0 within 5 s. Also checks the stamped version and the
 * systemd readiness notification.
 */
import assert from "node:assert/strict";
import { bundle, PERMISSION_FLAGS, RUNTIME_FLAGS } from "../scripts/build.ts";
import { runPyepics } from "./support/epics_env.ts";
import { startIoc } from "./support/ioc_process.ts";

const DENO = new URL("../node_modules/.bin/deno", import.meta.url).pathname;

Deno.test("release: the bundle", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "diss-ioc-bundle-" });
  try {
    const js = await bundle(`${dir}/diss-ioc.js`);

    await t.step("runs alone, acquires through libca, stops on SIGTERM", async () => {
      const notifyPath = `${dir}/notify`;
      const notifySocket = Deno.listenDatagram({ transport: "unixpacket", path: notifyPath });
      try {
        const denoArgs = ["run", ...PERMISSION_FLAGS, ...RUNTIME_FLAGS, js];

        const version = await new Deno.Command(DENO, {
          args: [...denoArgs, "--version"],
          cwd: dir,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const versionText = new TextDecoder().decode(version.stdout).trim();
        assert.equal(version.success, true, new TextDecoder().decode(version.stderr));
        const git = new Deno.Command("git", {
          args: ["describe", "--tags", "--always", "--dirty"],
          stdout: "piped",
        }).outputSync();
        const describe = new TextDecoder().decode(git.stdout).trim();
        assert.match(versionText, /^diss-ioc \d+\.\d+\.\d+/);
        if (git.success) assert.ok(versionText.endsWith(`(git ${describe})`), versionText);

        const ready = notifySocket.receive();
        const ioc = await startIoc(
          ["--backend", "sim", "--prefix", "REL:b:"],
          {
            SIM_SEED: "3",
            SIM_CHANNELS: "a,b",
            SIM_NUM_IMAGES: "1",
            SIM_IMAGE_SIZE: "64x48",
            SIM_PIXEL_TYPE: "uint32",
            NOTIFY_SOCKET: notifyPath,
          },
          30_000,
          { denoArgs, cwd: dir },
        );
        let stopped = false;
        try {
          const [first] = await ready;
          assert.match(new TextDecoder().decode(first), /^READY=1$/m);
          const versionLine = ioc.lines.find((l) => /msg=diss-ioc /.test(l));
          assert.ok(versionLine?.includes(versionText.slice("diss-ioc ".length)), versionLine);

          const r = await runPyepics(
            `
P = sys.argv[1]
assert wait(P + 'state', 'READY')
epics.caput(P + 'duration', 0, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
ok = wait(P + 'acquire', 0)
n = [int(epics.caget(P + 'a:asize%d' % i)) for i in range(3)]
img = epics.caget(P + 'a:image', use_monitor=False)
out({'ok': ok, 'asize': n, 'len': len(img), 'nonzero': int((img != 0).sum()),
     'version': epics.caget(P + 'version'), 'channels': list(epics.caget(P + 'channels'))})
`,
            { udpPort: ioc.udpPort, args: ["REL:b:"] },
          );
          assert.equal(r.code, 0, r.stderr + r.stdout);
          const res = JSON.parse(r.stdout);
          assert.equal(res.ok, true);
          assert.deepEqual(res.asize, [1, 48, 64]);
          assert.equal(res.len, 64 * 48);
          assert.ok(res.nonzero > 0, "image has data");
          assert.equal(res.version, versionText.slice("diss-ioc ".length, "diss-ioc ".length + 39));
          assert.deepEqual(res.channels, ["a", "b"]);

          const t0 = performance.now();
          const code = await ioc.stop("SIGTERM");
          stopped = true;
          const ms = performance.now() - t0;
          assert.equal(code, 0, ioc.lines.join("\n"));
          assert.ok(ms < 5000, `exit took ${ms.toFixed(0)} ms`);
        } finally {
          if (!stopped) await ioc.stop("SIGKILL");
        }
      } finally {
        notifySocket.close();
      }
    });

    await t.step(
      "bad backend, missing module, no network permission: one line, non-zero",
      async () => {
        const cases: { flags: readonly string[]; args: string[]; pattern: RegExp }[] = [
          {
            flags: PERMISSION_FLAGS,
            args: ["--backend", "nope"],
            pattern: /unknown backend "nope"/,
          },
          {
            flags: PERMISSION_FLAGS,
            args: ["--backend", "./missing.ts:Foo"],
            pattern: /cannot load backend module \.\/missing\.ts/,
          },
          {
            flags: PERMISSION_FLAGS.filter((f) => f !== "--allow-net"),
            args: ["--backend", "sim", "--prefix", "REL:c:"],
            pattern: /cannot start the CA server: .*net access/,
          },
        ];
        for (const c of cases) {
          const out = await new Deno.Command(DENO, {
            args: ["run", ...c.flags, js, ...c.args],
            cwd: dir,
            env: {
              EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
              EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1",
              EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
              SIM_IMAGE_SIZE: "16x16",
            },
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          }).output();
          const errors = new TextDecoder().decode(out.stderr).split("\n")
            .filter((l) => l.startsWith("diss-ioc: error:"));
          assert.notEqual(out.code, 0, c.args.join(" "));
          assert.equal(errors.length, 1, new TextDecoder().decode(out.stderr));
          assert.match(errors[0], c.pattern);
        }
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
