/**
 * pvRequest structures (spec §6.11): reading the selected field paths and `record._options`
 * from a received request, and building requests for our client.
 *
 * @module
 */

import type { FieldDesc, StructDesc, StructValue } from "./pvdata.ts";
import { T } from "./pvdata.ts";

/** What a pvRequest asks for. */
export interface PvRequest {
  /** Selected field paths (`value`, `alarm.severity`); empty = everything. */
  fields: string[];
  /** `record._options` as strings (`pipeline` → "true", `queueSize` → "4"). */
  options: Record<string, string>;
}

function leafPaths(type: StructDesc, prefix: string, out: string[]): void {
  for (const m of type.fields) {
    const path = prefix === "" ? m.name : `${prefix}.${m.name}`;
    if (m.type.kind === "structure" && m.type.fields.length > 0) leafPaths(m.type, path, out);
    else out.push(path);
  }
}

/** Reads a pvRequest of type `type` (null = none sent) with value `value`. */
export function parsePvRequest(type: FieldDesc | null, value: unknown): PvRequest {
  const out: PvRequest = { fields: [], options: {} };
  if (type === null || type.kind !== "structure") return out;
  const field = type.fields.find((m) => m.name === "field")?.type;
  if (field?.kind === "structure") leafPaths(field, "", out.fields);
  const record = type.fields.find((m) => m.name === "record")?.type;
  const optionsType = record?.kind === "structure"
    ? record.fields.find((m) => m.name === "_options")?.type
    : undefined;
  const v = value as StructValue | undefined;
  const optionValues = ((v?.record as StructValue | undefined)?._options ?? {}) as StructValue;
  if (optionsType?.kind === "structure") {
    for (const m of optionsType.fields) {
      const o = optionValues[m.name];
      if (typeof o === "string" || typeof o === "number" || typeof o === "boolean") {
        out.options[m.name] = String(o);
      } else if (typeof o === "bigint") out.options[m.name] = o.toString();
    }
  }
  return out;
}

/** Whether an option string means true (`true`, `1`, `yes`). */
export function optionTrue(text: string | undefined): boolean {
  return text !== undefined && /^(true|1|yes)$/i.test(text.trim());
}

/**
 * Builds a pvRequest type and value: `fields` are dotted paths (empty = all), `options` go to
 * `record._options` as strings.
 */
export function buildPvRequest(
  fields: readonly string[] = [],
  options: Record<string, string> = {},
): { type: StructDesc; value: StructValue } {
  const tree: Record<string, unknown> = {};
  for (const path of fields) {
    let node = tree;
    for (const part of path.split(".")) {
      node[part] ??= {};
      node = node[part] as Record<string, unknown>;
    }
  }
  const toType = (node: Record<string, unknown>): StructDesc =>
    T.struct(
      "",
      Object.fromEntries(
        Object.entries(node).map(([k, v]) => [k, toType(v as Record<string, unknown>)]),
      ),
    );
  const members: Record<string, FieldDesc> = { field: toType(tree) };
  const value: StructValue = { field: {} };
  const names = Object.keys(options);
  if (names.length > 0) {
    members.record = T.struct("", {
      _options: T.struct("", Object.fromEntries(names.map((n) => [n, T.scalar("string")]))),
    });
    value.record = { _options: { ...options } };
  }
  return { type: T.struct("", members), value };
}
