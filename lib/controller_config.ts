/**
 * Checks of a backend's {@link DeviceConfig}: validity (names usable in PV names, sane sizes) and
 * the "quasi-static" comparison used to detect configuration changes at run time.
 *
 * @module
 */

import type { DeviceConfig, PixelArray, PixelType } from "./events.ts";

/** Characters allowed in channel names and metadata keys (they become parts of PV names). */
export const NAME_PATTERN: RegExp = /^[A-Za-z0-9_.\-]+$/;

/** Typed-array constructor of each pixel type. */
export const PIXEL_ARRAY_TYPES: Readonly<
  Record<PixelType, new (length: number) => PixelArray>
> = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/** Returns the problems of a configuration (empty when it is usable). */
export function configProblems(config: DeviceConfig): string[] {
  const problems: string[] = [];
  if (!Array.isArray(config.channels) || config.channels.length === 0) {
    problems.push("no channels");
  } else {
    const seen = new Set<string>();
    for (const ch of config.channels) {
      if (typeof ch.name !== "string" || !NAME_PATTERN.test(ch.name)) {
        problems.push(`bad channel name ${JSON.stringify(ch.name)}`);
      } else if (seen.has(ch.name)) problems.push(`duplicate channel ${ch.name}`);
      seen.add(ch.name);
      for (const [key, value] of Object.entries(ch.meta ?? {})) {
        if (!NAME_PATTERN.test(key)) problems.push(`bad metadata key ${JSON.stringify(key)}`);
        if (typeof value !== "number" && typeof value !== "string") {
          problems.push(`metadata ${ch.name}:${key} is neither number nor string`);
        }
      }
    }
  }
  for (const key of ["numImages", "width", "height"] as const) {
    const v = config[key];
    if (!Number.isSafeInteger(v) || v < 1) problems.push(`${key} must be a positive integer`);
  }
  if (!(config.pixelType in PIXEL_ARRAY_TYPES)) {
    problems.push(`unknown pixel type ${JSON.stringify(config.pixelType)}`);
  }
  return problems;
}

/**
 * Describes how `now` differs from `initial` in the parts that must not change while running
 * (channels and their metadata keys, image count, geometry, pixel type); undefined when equal.
 */
export function configChange(initial: DeviceConfig, now: DeviceConfig): string | undefined {
  const changes: string[] = [];
  for (const key of ["numImages", "width", "height", "pixelType"] as const) {
    if (initial[key] !== now[key]) changes.push(`${key} ${initial[key]} -> ${now[key]}`);
  }
  const names = (c: DeviceConfig) =>
    c.channels.map((ch) => `${ch.name}(${Object.keys(ch.meta ?? {}).join(",")})`).join(" ");
  if (names(initial) !== names(now)) changes.push(`channels ${names(initial)} -> ${names(now)}`);
  return changes.length === 0 ? undefined : changes.join("; ");
}
