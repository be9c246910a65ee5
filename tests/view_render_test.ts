import { deepStrictEqual as assertEq, ok as assert } from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { decode } from "sixel";
import { getColormap, LEVELS, MASK_COLOR, MASK_INDEX, nextColormap } from "../lib/view/colormap.ts";
import { defaultMaskValues, imageStats } from "../lib/view/contrast.ts";
import { encodeHalfBlocks } from "../lib/view/halfblock.ts";
import { layoutTiles } from "../lib/view/layout.ts";
import { crc32, encodePng } from "../lib/view/png.ts";
import { renderFrame } from "../lib/view/render.ts";
import { resample, toIndices } from "../lib/view/scale.ts";
import { encodeSixel } from "../lib/view/sixel.ts";

function rgbOf(name: "gray" | "viridis" | "inferno", index: number): [number, number, number] {
  const lut = getColormap(name).lut;
  return [lut[3 * index], lut[3 * index + 1], lut[3 * index + 2]];
}

Deno.test("colormap gray and viridis end points, mask colour, cycling", () => {
  assertEq(rgbOf("gray", 0), [0, 0, 0]);
  assertEq(rgbOf("gray", LEVELS - 1), [255, 255, 255]);
  assertEq(rgbOf("gray", 127), [128, 128, 128]);
  assertEq(rgbOf("viridis", 0), [0x44, 0x01, 0x54]);
  assertEq(rgbOf("viridis", LEVELS - 1), [0xfd, 0xe7, 0x25]);
  assertEq(rgbOf("inferno", 0), [0, 0, 4]);
  for (const name of ["gray", "viridis", "inferno"] as const) {
    assertEq(rgbOf(name, MASK_INDEX), [...MASK_COLOR]);
  }
  assertEq(nextColormap("gray"), "viridis");
  assertEq(nextColormap("inferno"), "gray");
});

Deno.test("imageStats: min/max/mean and exact percentiles on integers, masks excluded", () => {
  const data = new Uint32Array(104);
  for (let i = 0; i < 100; i++) data[i] = i; // 0..99
  data.fill(0xffffffff, 100); // 4 saturated/defective pixels
  const all = imageStats(data, 0, data.length, defaultMaskValues("uint32"), 0, 100);
  assertEq([all.valid, all.masked, all.min, all.max, all.mean], [100, 4, 0, 99, 49.5]);
  assertEq([all.low, all.high], [0, 99]);
  const robust = imageStats(data, 0, data.length, [0xffffffff], 5, 90);
  assertEq([robust.low, robust.high], [5, 89]);
  // an offset selects the second image of a series
  const series = new Uint16Array([1, 2, 3, 65535, 10, 20, 30, 65535]);
  const second = imageStats(series, 4, 4, defaultMaskValues("uint16"), 0, 100);
  assertEq([second.min, second.max, second.mean, second.masked], [10, 30, 20, 1]);
});

Deno.test("imageStats: float data with NaN/Infinity, wide range via histogram", () => {
  const data = new Float32Array(10001);
  for (let i = 0; i <= 10000; i++) data[i] = i * 10; // 0..100000, wider than the bins
  const s = imageStats(data, 0, data.length, [], 1, 99);
  assert(Math.abs(s.low - 1000) <= 100000 / 4096 + 1e-6, `low ${s.low}`);
  assert(Math.abs(s.high - 99000) <= 100000 / 4096 + 1e-6, `high ${s.high}`);
  const bad = new Float64Array([NaN, Infinity, -Infinity, 5]);
  const b = imageStats(bad, 0, 4, [], 0, 100);
  assertEq([b.valid, b.min, b.max, b.mean], [1, 5, 5, 5]);
  const none = imageStats(new Uint8Array([255, 255]), 0, 2, defaultMaskValues("uint8"), 0, 100);
  assertEq(none.valid, 0);
  assert(Number.isNaN(none.mean));
});

Deno.test("defaultMaskValues per pixel type", () => {
  assertEq(defaultMaskValues("uint32"), [0xffffffff]);
  assertEq(defaultMaskValues("uint16"), [0xffff]);
  assertEq(defaultMaskValues("uint8"), [0xff]);
  assertEq(defaultMaskValues("int32"), [-1, 0x7fffffff]);
  assertEq(defaultMaskValues("float32"), []);
});

Deno.test("toIndices linear and log, clamping and masked", () => {
  const v = new Float32Array([0, 50, 100, -10, 200, NaN]);
  assertEq([...toIndices(v, 6, 0, 100, "linear")], [0, 127, 254, 0, 254, MASK_INDEX]);
  const logged = toIndices(new Float32Array([0, 9, 99, 999]), 4, 0, 999, "log");
  // log1p(9)/log1p(999) = 1/3, log1p(99)/log1p(999) = 2/3
  assertEq([...logged], [0, 85, 169, 254]);
  assertEq([...toIndices(new Float32Array([3, 3]), 2, 3, 3, "linear")], [0, 0]);
  // the fast log mapping agrees with rounding log1p(v-low)·k within one level everywhere
  const vals = new Float32Array(2000).map((_, i) => (i * 7919) % 100_000 - 50);
  const got = toIndices(vals, vals.length, 0, 90_000, "log");
  const k = (LEVELS - 1) / Math.log1p(90_000);
  let differ = 0;
  let exact = 0;
  vals.forEach((v, i) => {
    const t = v <= 0 ? 0 : Math.min(LEVELS - 1, Math.round(Math.log1p(v) * k));
    if (Math.abs(got[i] - t) > 1) differ++;
    if (got[i] === t) exact++;
  });
  assert(exact > 0.95 * vals.length, `exact ${exact}`);
  assertEq(differ, 0);
});

Deno.test("resample: area average down, repetition up, masked pixels excluded", () => {
  const img = new Uint16Array([
    1,
    3,
    10,
    10,
    5,
    7,
    10,
    0xffff,
    0xffff,
    0xffff,
    2,
    2,
    0xffff,
    0xffff,
    2,
    2,
  ]);
  const view = { data: img, offset: 0, width: 4, height: 4 };
  const down = resample(view, 2, 2, [0xffff]);
  assertEq([down[0], down[1], down[3]], [4, 10, 2]);
  assert(Number.isNaN(down[2]), "an all-masked area is NaN");
  const up = resample(
    { data: new Uint8Array([1, 2, 3, 4]), offset: 0, width: 2, height: 2 },
    4,
    4,
    [],
  );
  assertEq([...up], [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
});

Deno.test("layoutTiles: whole-factor enlargement, shrink to fit, grid for four channels", () => {
  const screen = { cols: 120, rows: 40, cellWidth: 10, cellHeight: 20 };
  const one = layoutTiles(screen, 1, 1028, 512);
  assertEq([one.scale, one.tiles[0].width, one.tiles[0].height], [1, 1028, 512]);
  const small = layoutTiles(screen, 1, 255, 133);
  assertEq([small.scale, small.tiles[0].width], [4, 1020]);
  const four = layoutTiles(screen, 4, 1028, 512);
  assertEq([four.gridCols, four.gridRows], [2, 2]);
  assert(four.scale < 1);
  for (const t of four.tiles) {
    assert(t.col + Math.ceil(t.width / 10) <= 120);
    assert(t.row + 1 + Math.ceil(t.height / 20) <= 39, "image ends above the status line");
  }
  const tiny = layoutTiles({ cols: 10, rows: 3, cellWidth: 1, cellHeight: 2 }, 4, 1028, 512);
  assert(tiny.tiles.every((t) => t.width >= 1 && t.height >= 1));
});

Deno.test("sixel output decodes back to the expected palette image", () => {
  const w = 13;
  const h = 11; // not a multiple of 6: the last band is partial
  const idx = new Uint16Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      idx[y * w + x] = (x * 37 + y * 11) % 7 === 0 ? MASK_INDEX : (x * 19 + y * 3) % 255;
    }
  }
  idx.fill(100, 2 * w, 3 * w); // a long run (RLE)
  for (const name of ["gray", "viridis"] as const) {
    const bytes = encodeSixel(idx, w, h, getColormap(name));
    const text = new TextDecoder().decode(bytes);
    assert(text.startsWith("\x1bP0;1;0q") && text.endsWith("\x1b\\"));
    const img = decode(bytes.subarray(text.indexOf("q") + 1, bytes.length - 2)); // DCS payload
    assertEq([img.width, img.height], [w, h]);
    for (let i = 0; i < w * h; i++) {
      const want = rgbOf(name, idx[i]);
      const got = [img.data8[4 * i], img.data8[4 * i + 1], img.data8[4 * i + 2]];
      for (let c = 0; c < 3; c++) {
        // registers carry percent values: one step is 2.55
        assert(Math.abs(got[c] - want[c]) <= 2, `${name} pixel ${i}: ${got} vs ${want}`);
      }
    }
  }
});

Deno.test("sixel output is decoded identically by ImageMagick (external decoder)", async () => {
  const w = 8;
  const h = 7;
  const idx = new Uint16Array(w * h);
  for (let i = 0; i < idx.length; i++) idx[i] = i % 2 === 0 ? 0 : 254;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.six`, encodeSixel(idx, w, h, getColormap("gray")));
    const out = await new Deno.Command("convert", {
      args: [`sixel:${dir}/a.six`, "-depth", "8", "gray:-"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    assertEq(out.stdout.length, w * h);
    for (let i = 0; i < w * h; i++) assertEq(out.stdout[i], i % 2 === 0 ? 0 : 255);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("half blocks: upper/lower pixel colours, odd height, cursor placement", () => {
  const idx = new Uint16Array([0, 254, 254, 0, MASK_INDEX, 0]); // 2 wide, 3 high
  const text = encodeHalfBlocks(idx, 2, 3, getColormap("gray"), 4, 2);
  assert(text.startsWith("\x1b[3;5H\x1b[38;2;0;0;0m\x1b[48;2;255;255;255m\u2580"));
  assert(text.includes("\x1b[4;5H\x1b[38;2;255;0;0m\x1b[49m\u2580"), JSON.stringify(text));
  assertEq(text.split("\u2580").length - 1, 4);
});

function decodePng(png: Uint8Array) {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  assertEq([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let at = 8;
  const chunks: Record<string, Uint8Array> = {};
  while (at < png.length) {
    const len = view.getUint32(at);
    const type = new TextDecoder().decode(png.subarray(at + 4, at + 8));
    assertEq(view.getUint32(at + 8 + len), crc32(png, at + 4, at + 8 + len), `CRC of ${type}`);
    chunks[type] = png.subarray(at + 8, at + 8 + len);
    at += 12 + len;
  }
  const hdr = new DataView(chunks.IHDR.buffer, chunks.IHDR.byteOffset);
  return {
    width: hdr.getUint32(0),
    height: hdr.getUint32(4),
    depth: chunks.IHDR[8],
    colorType: chunks.IHDR[9],
    palette: chunks.PLTE,
    raw: new Uint8Array(inflateSync(chunks.IDAT)),
    hasEnd: "IEND" in chunks,
  };
}

Deno.test("PNG output decodes back: header, palette, pixels", () => {
  const w = 5;
  const h = 3;
  const idx = new Uint16Array(w * h).map((_, i) => (i * 17) % 256);
  const png = decodePng(encodePng(idx, w, h, getColormap("viridis")));
  assertEq([png.width, png.height, png.depth, png.colorType, png.hasEnd], [w, h, 8, 3, true]);
  assertEq([...png.palette], [...getColormap("viridis").lut]);
  for (let y = 0; y < h; y++) {
    assertEq(png.raw[y * (w + 1)], 0, "filter byte");
    for (let x = 0; x < w; x++) assertEq(png.raw[y * (w + 1) + 1 + x], idx[y * w + x]);
  }
});

Deno.test("renderFrame: one tile per channel with labels, stats per tile", () => {
  const a = new Uint32Array(64 * 32).map((_, i) => i % 100);
  const b = new Uint32Array(64 * 32).fill(7);
  const images = [
    { name: "threshold_1", data: a, offset: 0, width: 64, height: 32, mask: [0xffffffff] },
    { name: "threshold_2", data: b, offset: 0, width: 64, height: 32, mask: [0xffffffff] },
  ];
  for (const output of ["sixel", "halfblock"] as const) {
    const r = renderFrame(images, {
      output,
      screen: {
        cols: 80,
        rows: 24,
        cellWidth: output === "sixel" ? 8 : 1,
        cellHeight: output === "sixel" ? 16 : 2,
      },
      scale: "linear",
      colormap: "gray",
      contrastLevel: 0,
    });
    const text = new TextDecoder().decode(r.bytes);
    assert(text.includes("threshold_1") && text.includes("threshold_2"));
    assertEq(r.layout.tiles.length, 2);
    assertEq([r.stats[0].max, r.stats[1].mean], [99, 7]);
    assertEq(text.includes("\x1bP"), output === "sixel");
  }
});
