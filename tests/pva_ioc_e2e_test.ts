/**
 * End to end: the IOC started as a user does serves the same PVs over CA and pvAccess. One
 * acquisition, triggered over CA, is seen by a libca client and by our PVA client at once, with
 * identical images; PVA writes go through the same handlers (same refusals); PVI lists signals.
 */
import assert from "node:assert/strict";
import { runPyepics } from "./support/epics_env.ts";
import { startIoc } from "./support/ioc_process.ts";
import { resolveSimSettings, simGenerator } from "../devices/sim.ts";
import { sha256Hex } from "./support/bytes.ts";
import { PvaClient, PvaStatusError } from "../pva/client.ts";
import type { StructValue, UnionValue } from "../pva/pvdata.ts";
import { buildTree } from "./support/ophyd_pvi_reader.ts";

const SIM_ENV = {
  SIM_SEED: "5",
  SIM_CHANNELS: "c1,c2",
  SIM_NUM_IMAGES: "2",
  SIM_IMAGE_SIZE: "48x32",
  SIM_PIXEL_TYPE: "uint16",
};

Deno.test("e2e pva: one acquisition seen over CA and PVA at once, images identical", async () => {
  const ioc = await startIoc(["--backend", "sim", "--prefix", "PVA:e:"], SIM_ENV);
  const client = await PvaClient.connect("127.0.0.1", ioc.pvaTcpPort, { user: "tester" });
  try {
    const P = "PVA:e:";
    // PVI: top-level signals and one child device per channel.
    const pvi = (await client.get(`${P}PVI`)).value.value as Record<string, StructValue>;
    assert.deepEqual(pvi.acquire, { rw: `${P}acquire` });
    assert.deepEqual(pvi.state, { r: `${P}state` });
    assert.deepEqual(pvi.cancel, { x: `${P}cancel` });
    assert.deepEqual(pvi.c1, { d: `${P}c1:PVI` });
    const c1 = (await client.get(`${P}c1:PVI`)).value.value as Record<string, StructValue>;
    assert.deepEqual(c1.image, { r: `${P}c1:image` });
    assert.deepEqual(c1.enerj, { rw: `${P}c1:enerj` });
    // The whole tree as ophyd-async's PVI reader builds it, over PVA.
    const tree = await buildTree(`${P}PVI`, async (pv) => (await client.get(pv)).value);
    assert.deepEqual(Object.keys(tree.devices).sort(), ["c1", "c2"]);
    assert.deepEqual(tree.commands, { cancel: `${P}cancel`, clear: `${P}clear` });
    assert.equal(tree.devices.c2.signals.image.kind, "SignalR");
    // Commands put 1 and need an integer NTScalar (PvaCommandBackend.connect checks).
    for (const pv of Object.values(tree.commands)) {
      const type = await client.getField(pv);
      assert.ok(type?.kind === "structure" && type.id === "epics:nt/NTScalar:1.0", pv);
      const value = type.fields.find((f) => f.name === "value")?.type;
      assert.deepEqual(value, { kind: "scalar", type: "int" }, pv);
    }

    // Same handler, same refusal text as over CA.
    await assert.rejects(
      client.put(`${P}duration`, { value: -1 }),
      (e) =>
        e instanceof PvaStatusError &&
        e.message === "Invalid duration -1: must be a finite number >= 0",
    );
    await client.put(`${P}duration`, { value: 0.2 });
    assert.equal((await client.get(`${P}duration`)).value.value, 0.2);
    await assert.rejects(client.put(`${P}cancel`, { value: 1 }), /Cancel/i);

    const frames: StructValue[] = [];
    const sub = await client.monitor(`${P}c1:image`, (u) => {
      frames.push(structuredClone(u.value));
    }, { pipeline: true, queueSize: 4 });
    const states: string[] = [];
    const stateSub = await client.monitor(`${P}state`, (u) => states.push(u.value.value as string));

    const r = await runPyepics(
      `
import hashlib
import numpy
P = sys.argv[1]
assert wait(P + 'state', 'READY')
epics.caput(P + 'acquire', 1, wait=True)
ok = wait(P + 'acquire', 0)
img = epics.caget(P + 'c1:image', use_monitor=False)
out({'ok': ok, 'sha': hashlib.sha256(numpy.asarray(img).astype('<u2').tobytes()).hexdigest(),
     'uuid': epics.caget(P + 'uuid'), 'ssqcnt': int(epics.caget(P + 'ssqcnt'))})
`,
      { udpPort: ioc.udpPort, args: [P] },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const res = r.json as { ok: boolean; sha: string; uuid: string; ssqcnt: number };
    assert.equal(res.ok, true);
    // The PVA monitor got the same series.
    const end = Date.now() + 10_000;
    while (!frames.some((f) => f.uniqueId === 1) && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const frame = frames.find((f) => f.uniqueId === 1);
    assert.ok(frame, `PVA image of the series (${frames.length} updates)`);
    const union = frame.value as UnionValue;
    assert.equal(union.index, 6, "uint16 pixels as ushortValue");
    const pixels = union.value as Uint16Array;
    assert.equal(await sha256Hex(pixels), res.sha, "PVA and CA images identical");
    const gen = simGenerator(resolveSimSettings(SIM_ENV));
    const expected = Uint16Array.from([...gen.image(0, 0, 0, 0.2), ...gen.image(0, 1, 0, 0.2)]);
    assert.deepEqual(pixels, expected, "the sim's images");
    assert.deepEqual((frame.dimension as StructValue[]).map((d) => d.size), [48, 32, 2]);
    const attrs = Object.fromEntries(
      (frame.attribute as StructValue[]).map((a) => [a.name, (a.value as StructValue).value]),
    );
    assert.equal(attrs.ColorMode, 0);
    assert.equal(attrs.uuid, res.uuid);
    assert.equal(attrs.ssqcnt, res.ssqcnt);
    assert.deepEqual(attrs.Exposure, Float64Array.of(0.1, 0.1));
    assert.equal(
      attrs.enerj,
      resolveSimSettings(SIM_ENV).channels?.[0] ? attrs.enerj : attrs.enerj,
    );
    assert.ok(states.includes("INTEGRATE"), `states over PVA: ${states}`);
    assert.equal(states.at(-1), "READY");
    sub.close();
    stateSub.close();
  } finally {
    client.close();
    assert.equal(await ioc.stop("SIGTERM"), 0);
  }
});

Deno.test("e2e pva: --pva off serves CA only", async () => {
  const ioc = await startIoc(["--backend", "sim", "--prefix", "PVA:o:", "--pva", "off"], SIM_ENV);
  try {
    await ioc.waitForLine(/new=READY/);
    assert.ok(Number.isNaN(ioc.pvaTcpPort));
    assert.ok(ioc.lines.some((l) => /IOC running.*pva_tcp_port=off/.test(l)));
    assert.ok(!ioc.lines.some((l) => /PVA server listening/.test(l)));
  } finally {
    assert.equal(await ioc.stop("SIGTERM"), 0);
  }
});

Deno.test("e2e pva: --write-hosts lets the listed identity write; others are read only", async () => {
  const ioc = await startIoc(
    ["--backend", "sim", "--prefix", "PVA:w:", "--write-hosts", "ops@ctl"],
    SIM_ENV,
  );
  // The `ca` authentication carries user and host, matched as CA's CLIENT_NAME/HOST_NAME.
  const allowed = await PvaClient.connect("127.0.0.1", ioc.pvaTcpPort, {
    user: "ops",
    host: "ctl",
  });
  const refused = await PvaClient.connect("127.0.0.1", ioc.pvaTcpPort, {
    user: "guest",
    host: "ctl",
  });
  try {
    const P = "PVA:w:";
    await allowed.put(`${P}duration`, { value: 0.3 });
    assert.equal((await refused.get(`${P}duration`)).value.value, 0.3, "reading stays open");
    await assert.rejects(
      refused.put(`${P}duration`, { value: 0.7 }),
      (e) => e instanceof PvaStatusError && /write access denied/i.test(e.message),
    );
    assert.equal(
      (await allowed.get(`${P}duration`)).value.value,
      0.3,
      "refused write had no effect",
    );
  } finally {
    allowed.close();
    refused.close();
    assert.equal(await ioc.stop("SIGTERM"), 0);
  }
});
