/**
 * The viewer application with a scripted terminal: capability detection and fallback, keys,
 * frame limits, PNG output, terminal restore on every exit path.
 */

import assert from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { applyKey, type DisplayState, EXIT, parseViewArgs, runView } from "../lib/view/app.ts";
import {
  type ChannelData,
  type SourceChange,
  SourceUnreachableError,
  type ViewSnapshot,
  type ViewSource,
} from "../lib/view/source.ts";
import { LEAVE_SCREEN } from "../lib/view/tty.ts";
import { fakeTerminal } from "./support/view_terminal.ts";

/**
 * A source that delivers a new two-channel series whenever `emit` is called, and once right after
 * start (the app has registered its listener by then).
 */
function fakeSource(options: { fail?: Error } = {}) {
  let listener: (c: SourceChange, m?: string) => void = () => {};
  let n = 0;
  const channel = (name: string, k: number): ChannelData => ({
    name,
    data: new Uint32Array(2 * 40 * 30).map((_, i) => (i * k) % 97),
    numImages: 2,
    width: 40,
    height: 30,
    mask: [0xffffffff],
  });
  let snap: ViewSnapshot = { state: "READY", seriesId: "", ssqcnt: undefined, channels: [] };
  let closed = false;
  const source: ViewSource & { emit(): void; closed(): boolean } = {
    start() {
      if (options.fail) return Promise.reject(options.fail);
      snap = { ...snap, channels: [channel("threshold_1", 1), channel("threshold_2", 3)] };
      queueMicrotask(() => source.emit());
      return Promise.resolve();
    },
    snapshot: () => snap,
    onChange(l) {
      listener = l;
    },
    close() {
      closed = true;
      return Promise.resolve();
    },
    emit() {
      n++;
      snap = { ...snap, seriesId: `uuid-${n}-0000`, ssqcnt: n % 16 };
      listener("image");
    },
    closed: () => closed,
  };
  return source;
}

function assertRestored(term: ReturnType<typeof fakeTerminal>): void {
  assert.ok(term.text().includes(LEAVE_SCREEN), "alternate screen left, cursor shown");
  assert.equal(term.rawCalls.at(-1), false, "raw mode switched off last");
}

Deno.test("view: a terminal that answers nothing falls back to half blocks without hanging", async () => {
  const source = fakeSource();
  const term = fakeTerminal({
    onWrite: (t) =>
      t.includes("\u2580") || t.includes("waiting")
        ? queueMicrotask(() => source.emit())
        : undefined,
  });
  const code = await runView(["--backend", "x", "--frames", "2", "--query-timeout", "50"], {
    io: term,
    source,
    message: () => {},
  });
  assert.equal(code, EXIT.OK);
  const text = term.text();
  assert.ok(text.includes("\u2580"), "half blocks drawn");
  assert.ok(!text.includes("\x1bP0;1;0q"), "no sixel");
  assert.ok(text.includes("did not answer"), "status line tells why");
  assert.ok(text.includes("threshold_1") && text.includes("threshold_2"));
  assert.ok(/ssqcnt=\d/.test(text) && text.includes("uuid=uuid-"));
  assertRestored(term);
  assert.ok(source.closed());
});

Deno.test("view: DA1 with attribute 4 selects sixel sized from the window reply", async () => {
  const source = fakeSource();
  const term = fakeTerminal({
    replies: "\x1b[4;600;1000t\x1b[?2;0;1000;1000S\x1b[?63;1;4;22c",
    onWrite: () => queueMicrotask(() => source.emit()),
  });
  const code = await runView(["--connect", "X:", "--frames", "1", "--channel", "threshold_2"], {
    io: term,
    source,
    message: () => {},
  });
  assert.equal(code, EXIT.OK);
  const text = term.text();
  assert.ok(text.includes("\x1bP0;1;0q"), "sixel sent");
  // 100x30 cells of 10x20 px; one 40x30 channel → enlarged by whole factor 18 (720x540)
  assert.ok(text.includes('"1;1;720;540'), text.slice(0, 300));
  assert.ok(text.includes("[threshold_2]"));
  assertRestored(term);
});

Deno.test("view: keys change the display, q quits and restores the terminal", async () => {
  const source = fakeSource();
  let typed = false;
  const term = fakeTerminal({
    replies: "\x1b[?62;22c",
    cols: 140,
    onWrite: (t) => {
      if (!typed && t.includes("\u2580")) {
        typed = true;
        queueMicrotask(() => term.type("ml+\x1b[Cc"));
      } else if (typed && t.split("\x1b[7m").at(-1)!.includes("[threshold_1]")) {
        queueMicrotask(() => term.type("q"));
      }
    },
  });
  const run = runView(["--backend", "x"], { io: term, source, message: () => {} });
  assert.equal(await run, EXIT.OK);
  const status = term.text().split("\x1b[7m").at(-1)!;
  assert.ok(status.includes("log viridis"), status);
  assert.ok(status.includes("img=2/2"), status);
  assert.ok(status.includes("[threshold_1]"), status);
  assertRestored(term);
});

Deno.test("view: a failing source restores the terminal, says why, exits 3", async () => {
  const messages: string[] = [];
  const term = fakeTerminal({ replies: "\x1b[?62;4c" });
  const code = await runView(["--connect", "NOBODY:"], {
    io: term,
    source: fakeSource({
      fail: new SourceUnreachableError("no IOC answers for NOBODY:state within 5 s"),
    }),
    message: (m) => messages.push(m),
  });
  assert.equal(code, EXIT.UNREACHABLE);
  assert.ok(messages.some((m) => m.includes("no IOC answers for NOBODY:state")));
  assertRestored(term);
});

Deno.test("view: stdout not a terminal without --png gives a clear message", async () => {
  const messages: string[] = [];
  const code = await runView(["--backend", "x"], {
    io: fakeTerminal({ output: false, input: false }),
    source: fakeSource(),
    message: (m) => messages.push(m),
  });
  assert.equal(code, EXIT.USAGE);
  assert.ok(messages[0].includes("not a terminal"));
});

Deno.test("view: --png writes the latest frame (headless), decodable", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const source = fakeSource();
    const term = fakeTerminal({ output: false, input: false });
    const run = runView(["--backend", "x", "--png", `${dir}/f.png`, "--frames", "1"], {
      io: term,
      source,
      message: () => {},
    });
    assert.equal(await run, EXIT.OK);
    assert.equal(term.text(), "", "nothing written to a non-terminal");
    const png = await Deno.readFile(`${dir}/f.png`);
    const view = new DataView(png.buffer);
    // two 40x30 channels side by side with a 4-pixel gap
    assert.deepEqual([view.getUint32(16), view.getUint32(20)], [84, 30]);
    const idatAt = png.indexOf(0x49, 8 + 25 + 12 + 768); // 'I' of IDAT after IHDR and PLTE
    const len = view.getUint32(idatAt - 4);
    const raw = inflateSync(png.subarray(idatAt + 4, idatAt + 4 + len));
    assert.equal(raw.length, 30 * (84 + 1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("view: bad arguments exit 2 with usage", async () => {
  for (
    const args of [[], ["--backend", "a", "--connect", "b"], [
      "--connect",
      "X:",
      "--scale",
      "cubic",
    ], ["--connect", "X:", "--frames", "0"]]
  ) {
    const messages: string[] = [];
    const code = await runView(args, { io: fakeTerminal(), message: (m) => messages.push(m) });
    assert.equal(code, EXIT.USAGE, args.join(" "));
    assert.ok(messages.join("\n").includes("Usage: diss-ioc view"));
  }
});

Deno.test("parseViewArgs: defaults and DISS_AUTO_ACQUIRE", () => {
  const o = parseViewArgs(["--connect", "D:"], {});
  assert.deepEqual([o.output, o.scale, o.colormap, o.channel, o.timeout], [
    "auto",
    "linear",
    "gray",
    "all",
    5,
  ]);
  assert.equal(parseViewArgs(["--backend", "sim"], { DISS_AUTO_ACQUIRE: "yes" }).autoAcquire, 1);
  assert.equal(
    parseViewArgs(["--backend", "sim"], { DISS_AUTO_ACQUIRE: "0" }).autoAcquire,
    undefined,
  );
  assert.equal(parseViewArgs(["--backend", "sim", "--auto-acquire", "0.5"], {}).autoAcquire, 0.5);
  assert.deepEqual(parseViewArgs(["--connect", "D:", "--channels", "a, b"], {}).channels, [
    "a",
    "b",
  ]);
});

Deno.test("applyKey: channel cycling, image bounds, contrast bounds", () => {
  let s: DisplayState = { channel: -1, image: 0, scale: "linear", colormap: "gray", contrast: 0 };
  const step = (k: Parameters<typeof applyKey>[1]) => {
    const n = applyKey(s, k, 2, 3);
    assert.notEqual(n, "quit");
    s = n as DisplayState;
  };
  step("channel");
  assert.equal(s.channel, 0);
  step("channel");
  step("channel");
  assert.equal(s.channel, -1, "after the last channel: all");
  step("left");
  assert.equal(s.image, 0);
  for (let i = 0; i < 5; i++) step("right");
  assert.equal(s.image, 2);
  step("contrast-");
  assert.equal(s.contrast, 0);
  for (let i = 0; i < 20; i++) step("contrast+");
  assert.equal(s.contrast, 7);
  assert.equal(applyKey(s, "quit", 2, 3), "quit");
});

Deno.test("view: a terminal resize re-lays out the tiles", async () => {
  const source = fakeSource();
  let phase = 0;
  const term = fakeTerminal({
    replies: "\x1b[?62;22c",
    cols: 100,
    rows: 30,
    onWrite: (t) => {
      if (phase === 0 && t.includes("\u2580")) {
        phase = 1;
        queueMicrotask(() => term.resize(50, 20));
      } else if (phase === 1 && t.includes("\x1b[20;1H")) {
        phase = 2;
        queueMicrotask(() => term.type("q"));
      }
    },
  });
  const run = runView(["--backend", "x"], { io: term, source, message: () => {} });
  assert.equal(await run, EXIT.OK);
  assert.equal(phase, 2);
  const afterResize = term.text().slice(term.text().lastIndexOf("\x1b[2J"));
  assert.ok(afterResize.includes("\x1b[20;1H"), "status line moved to the new last row");
  assert.ok(!afterResize.includes("\x1b[30;1H"), "nothing drawn at the old last row");
});

Deno.test("view: an error while drawing (PNG not writable) restores the terminal, exit 1", async () => {
  const source = fakeSource();
  const messages: string[] = [];
  const term = fakeTerminal({ replies: "\x1b[?62c" });
  const run = runView(["--backend", "x", "--png", "/nonexistent-dir/x/f.png"], {
    io: term,
    source,
    message: (m) => messages.push(m),
  });
  assert.equal(await run, EXIT.ERROR);
  assert.ok(messages.some((m) => m.includes("nonexistent-dir")), messages.join("\n"));
  assertRestored(term);
  assert.ok(source.closed());
});
