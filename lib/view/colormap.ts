/**
 * Colour maps as 256-entry RGB lookup tables.
 *
 * Index 0..254 carries the map from low to high; index {@link MASK_INDEX} (255) is reserved for
 * masked pixels (saturated, defective or gaps) and always gets {@link MASK_COLOR}.
 *
 * @module
 */

/** Names of the built-in colour maps, in the order the `m` key cycles through them. */
export const COLORMAP_NAMES = ["gray", "viridis", "inferno"] as const;

/** Name of a built-in colour map. */
export type ColormapName = typeof COLORMAP_NAMES[number];

/** Number of palette levels used for data values (indices 0..LEVELS-1). */
export const LEVELS = 255;

/** Palette index reserved for masked pixels. */
export const MASK_INDEX = 255;

/** Colour of masked pixels: a saturated red that stands out on every map. */
export const MASK_COLOR: readonly [number, number, number] = [255, 0, 0];

/** A colour map: 256 × RGB bytes (`lut[3*i]`, `lut[3*i+1]`, `lut[3*i+2]`). */
export interface Colormap {
  /** Name of the map. */
  readonly name: ColormapName;
  /** 768 bytes: RGB of palette index 0..255 (255 = mask colour). */
  readonly lut: Uint8Array;
}

// Evenly spaced anchor colours of the perceptually uniform maps (matplotlib's viridis and
// inferno sampled at 0, 0.1, ..., 1 and 0, 1/9, ..., 1); linear interpolation in between.
const ANCHORS: Record<Exclude<ColormapName, "gray">, readonly string[]> = {
  viridis: [
    "440154",
    "482475",
    "414487",
    "355f8d",
    "2a788e",
    "21918c",
    "22a884",
    "44bf70",
    "7ad151",
    "bddf26",
    "fde725",
  ],
  inferno: [
    "000004",
    "1b0c41",
    "4a0c6b",
    "781c6d",
    "a52c60",
    "cf4446",
    "ed6925",
    "fb9b06",
    "f7d13d",
    "fcffa4",
  ],
};

function buildLut(name: ColormapName): Uint8Array {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < LEVELS; i++) {
    const t = i / (LEVELS - 1);
    if (name === "gray") {
      const v = Math.round(t * 255);
      lut[3 * i] = v;
      lut[3 * i + 1] = v;
      lut[3 * i + 2] = v;
      continue;
    }
    const anchors = ANCHORS[name];
    const pos = t * (anchors.length - 1);
    const k = Math.min(Math.floor(pos), anchors.length - 2);
    const f = pos - k;
    const a = parseInt(anchors[k], 16);
    const b = parseInt(anchors[k + 1], 16);
    for (let c = 0; c < 3; c++) {
      const shift = 16 - 8 * c;
      const ca = (a >> shift) & 0xff;
      const cb = (b >> shift) & 0xff;
      lut[3 * i + c] = Math.round(ca + (cb - ca) * f);
    }
  }
  lut.set(MASK_COLOR, 3 * MASK_INDEX);
  return lut;
}

const CACHE = new Map<ColormapName, Colormap>();

/** Returns the colour map of that name (built once, then cached). */
export function getColormap(name: ColormapName): Colormap {
  let map = CACHE.get(name);
  if (!map) {
    map = { name, lut: buildLut(name) };
    CACHE.set(name, map);
  }
  return map;
}

/** Whether a string names a built-in colour map. */
export function isColormapName(name: string): name is ColormapName {
  return (COLORMAP_NAMES as readonly string[]).includes(name);
}

/** The map after `name` in {@link COLORMAP_NAMES}, wrapping around. */
export function nextColormap(name: ColormapName): ColormapName {
  const i = COLORMAP_NAMES.indexOf(name);
  return COLORMAP_NAMES[(i + 1) % COLORMAP_NAMES.length];
}

/** The palette as `[r, g, b]` triples (the form the sixel encoder takes). */
export function paletteTriples(map: Colormap): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let i = 0; i < 256; i++) out.push([map.lut[3 * i], map.lut[3 * i + 1], map.lut[3 * i + 2]]);
  return out;
}
