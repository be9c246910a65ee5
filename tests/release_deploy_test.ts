import assert from "node:assert/strict";

const DEPLOY = new URL("../scripts/deploy/", import.meta.url);

/** Parses an INI-style unit file into section → key → values. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = line.match(/^\[(.+)\]$/);
    if (header) {
      current = sections.get(header[1]) ?? new Map();
      sections.set(header[1], current);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(current && eq > 0, `bad unit line: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

function value(unit: Map<string, Map<string, string[]>>, section: string, key: string) {
  return unit.get(section)?.get(key)?.at(-1);
}

const hasSystemdAnalyze = (() => {
  try {
    return new Deno.Command("systemd-analyze", { args: ["--version"], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "systemd unit passes systemd-analyze verify without any warning",
  ignore: !hasSystemdAnalyze,
  fn() {
    const dir = Deno.makeTempDirSync();
    try {
      // verify checks that ExecStart exists and is executable: point it at a stand-in binary.
      const exe = `${dir}/diss-ioc`;
      Deno.writeTextFileSync(exe, "#!/bin/sh\nexit 0\n");
      Deno.chmodSync(exe, 0o755);
      Deno.writeTextFileSync(`${dir}/diss-ioc.env`, "DISS_DEVICE_BACKEND=sim\n");
      const unit = Deno.readTextFileSync(new URL("diss-ioc.service", DEPLOY))
        .replace("ExecStart=/usr/local/bin/diss-ioc", `ExecStart=${exe}`)
        .replace(
          "EnvironmentFile=/etc/diss-ioc/diss-ioc.env",
          `EnvironmentFile=${dir}/diss-ioc.env`,
        );
      Deno.writeTextFileSync(`${dir}/diss-ioc.service`, unit);
      const out = new Deno.Command("systemd-analyze", {
        args: ["verify", "--man=no", `${dir}/diss-ioc.service`],
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.success, true, text);
      assert.equal(text.trim(), "", `systemd-analyze complained:\n${text}`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("service and quadlet restart no faster than the original's example allows", () => {
  for (const name of ["diss-ioc.service", "diss-ioc.container"]) {
    const unit = parseUnit(Deno.readTextFileSync(new URL(name, DEPLOY)));
    assert.equal(value(unit, "Service", "Restart"), "always", name);
    assert.ok(Number(value(unit, "Service", "RestartSec")) >= 60, `${name} RestartSec`);
    assert.equal(value(unit, "Unit", "StartLimitBurst"), "10", name);
    assert.equal(value(unit, "Unit", "StartLimitIntervalSec"), "9", name);
    assert.ok(value(unit, "Unit", "After")?.includes("network-online.target"), name);
  }
});

Deno.test("service is Type=notify with a watchdog; quadlet forwards the notify socket", () => {
  const service = parseUnit(Deno.readTextFileSync(new URL("diss-ioc.service", DEPLOY)));
  assert.equal(value(service, "Service", "Type"), "notify");
  assert.ok(Number(value(service, "Service", "WatchdogSec")) > 0);
  assert.equal(value(service, "Service", "ExecStart"), "/usr/local/bin/diss-ioc");
  const quadlet = parseUnit(Deno.readTextFileSync(new URL("diss-ioc.container", DEPLOY)));
  assert.equal(value(quadlet, "Container", "Notify"), "true");
  assert.equal(value(quadlet, "Container", "Network"), "host");
  assert.match(value(quadlet, "Container", "Image") ?? "", /diss-ioc/);
});

Deno.test("Containerfile builds in a build stage and ships only the executable", () => {
  const text = Deno.readTextFileSync(new URL("Containerfile", DEPLOY));
  const stages = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gm)];
  assert.equal(stages.length, 2);
  assert.equal(stages[0][2], "build");
  assert.match(text, /scripts\/build\.ts compile --target/);
  assert.match(text, /COPY --from=build \/diss-ioc \/usr\/local\/bin\/diss-ioc/);
  assert.match(text, /ENTRYPOINT \["\/usr\/local\/bin\/diss-ioc"\]/);
});
