import assert from "node:assert/strict";
import { resolveBackend } from "../devices/registry.ts";
import { createController, type Frame } from "../lib/controller.ts";

Deno.test("docs: the minimal backend example in docs/ioc.md loads and acquires", async () => {
  const doc = await Deno.readTextFile(new URL("../docs/ioc.md", import.meta.url));
  const code = /```ts\n(\/\/ my_device\.ts[\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(code, "example found");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/my_device.ts`, code);
    const MyDevice = await resolveBackend("./my_device.ts:MyDevice", dir);
    const controller = createController({
      device: (ctx) => new MyDevice(ctx),
      env: {},
      runtimeInterval: 0,
    });
    const frames: Frame[] = [];
    let wake = () => {};
    controller.subscribe({
      state: () => wake(),
      data: (f) => {
        frames.push(f);
      },
    });
    const until = async (state: string) => {
      while (controller.state !== state) await new Promise<void>((r) => (wake = r));
    };
    await controller.start();
    await until("READY");
    await controller.request({ kind: "command", command: "Acquire", duration: 0 });
    await until("PROCESS");
    await until("READY");
    assert.equal(frames.length, 1);
    assert.equal(frames[0].images.second.length, 3 * 256 * 512);
    assert.equal(frames[0].images.second[2 * 256 * 512], 2);
    await controller.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
