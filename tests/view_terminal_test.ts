/**
 * Terminal capability replies, geometry and key parsing of the viewer.
 */

import assert from "node:assert/strict";
import { parseKeys } from "../lib/view/keys.ts";
import {
  cellGeometry,
  hasDa1Reply,
  parseTerminalReplies,
  supportsSixel,
} from "../lib/view/terminal_replies.ts";
import { InputPump, probeTerminal } from "../lib/view/tty.ts";
import { fakeTerminal } from "./support/view_terminal.ts";

Deno.test("DA1 replies: xterm vt340 (sixel) and tmux (none)", () => {
  const vt340 = parseTerminalReplies("\x1b[?63;1;2;4;6;9;15;16;22;28;29c");
  assert.deepEqual(vt340.da1, [63, 1, 2, 4, 6, 9, 15, 16, 22, 28, 29]);
  assert.equal(supportsSixel(vt340), true);
  const tmux = parseTerminalReplies("\x1b[?1;2c");
  assert.equal(supportsSixel(tmux), false);
  assert.equal(supportsSixel(parseTerminalReplies("")), false);
  assert.equal(supportsSixel(parseTerminalReplies("\x1b[?64;14c")), false, "14 is not 4");
  assert.equal(hasDa1Reply("\x1b[?62;4"), false, "incomplete reply");
});

Deno.test("size replies: graphics maximum, window pixels, cell pixels, mixed with keys", () => {
  const r = parseTerminalReplies("q\x1b[4;800;1280t\x1b[6;20;10t\x1b[?2;0;1000;2048S\x1b[?62;4c");
  assert.deepEqual(r.window, { width: 1280, height: 800 });
  assert.deepEqual(r.cell, { width: 10, height: 20 });
  assert.deepEqual(r.graphics, { width: 1000, height: 2048 });
  const failed = parseTerminalReplies("\x1b[?2;3;0;0S");
  assert.equal(failed.graphics, undefined, "status 3 = failure");
});

Deno.test("cellGeometry: from cell reply, from window, limited by graphics size, fallback", () => {
  const fb = { cellWidth: 10, cellHeight: 20 };
  assert.deepEqual(cellGeometry({ cell: { width: 9, height: 18 } }, 100, 40, fb), {
    cellWidth: 9,
    cellHeight: 18,
  });
  assert.deepEqual(cellGeometry({ window: { width: 1200, height: 800 } }, 120, 40, fb), {
    cellWidth: 10,
    cellHeight: 20,
  });
  assert.deepEqual(
    cellGeometry(
      { window: { width: 2400, height: 1600 }, graphics: { width: 1200, height: 1600 } },
      120,
      40,
      fb,
    ),
    { cellWidth: 10, cellHeight: 40 },
  );
  assert.deepEqual(cellGeometry({}, 80, 24, fb), fb);
});

Deno.test("probeTerminal: silent terminal returns after the timeout; answering one at once", async () => {
  const silent = fakeTerminal();
  const pump = new InputPump(silent);
  pump.start();
  const t0 = performance.now();
  const r = await probeTerminal(silent, pump, 60);
  assert.equal(r.answered, false);
  assert.ok(performance.now() - t0 < 2000);
  silent.endInput();

  const vt = fakeTerminal({ replies: "\x1b[?2;0;800;600S\x1b[?63;4c" });
  const pump2 = new InputPump(vt);
  pump2.start();
  const r2 = await probeTerminal(vt, pump2, 10_000);
  assert.equal(r2.answered, true);
  assert.deepEqual(r2.replies.graphics, { width: 800, height: 600 });
  vt.endInput();

  const piped = fakeTerminal({ input: false });
  const r3 = await probeTerminal(piped, new InputPump(piped), 10_000);
  assert.equal(r3.answered, false, "no input terminal: no wait at all");
});

Deno.test("parseKeys: letters, arrows (CSI and SS3), Ctrl-C, unknown sequences skipped", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assert.deepEqual(parseKeys(enc("qclm+-=")), [
    "quit",
    "channel",
    "scale",
    "colormap",
    "contrast+",
    "contrast-",
    "contrast+",
  ]);
  assert.deepEqual(parseKeys(enc("\x1b[C\x1b[D\x1bOC\x1bOD")), ["right", "left", "right", "left"]);
  assert.deepEqual(parseKeys(enc("\x03")), ["quit"]);
  assert.deepEqual(parseKeys(enc("\x1b[1;5A\x1b[?62;4cx")), []);
});
