/**
 * View source that shows a running IOC over Channel Access: finds it by searching
 * `{prefix}state`, learns the channel names (from `--channels` or the `{prefix}channels` PV),
 * then monitors state, series uuid, ssqcnt, per-channel sizes (`asize0` images, `asize1` height,
 * `asize2` width, as lib/ioc_pvs.ts serves them) and images (`{prefix}{channel}:image`). Survives IOC restarts: the CA client
 * searches again and re-subscribes; the viewer shows the outage meanwhile.
 *
 * @module
 */

import { type CaClient, type CaValue, createCaClient, DBR, readClientEnv } from "../../ca/mod.ts";
import type { PixelArray } from "../../devices/contract.ts";
import { getLog } from "../../core/log.ts";
import { defaultMaskValues, type MaskValues } from "./contrast.ts";
import {
  type ChannelData,
  type SourceChange,
  SourceUnreachableError,
  type ViewSnapshot,
  type ViewSource,
} from "./source.ts";

const log = getLog("view.ca");

/** Options of {@link createCaSource}. */
export interface CaSourceOptions {
  /** PV prefix of the IOC, including the trailing colon. */
  prefix: string;
  /** Channel names; default read from `{prefix}channels`. */
  channels?: string[];
  /** How long to search for the IOC (ms). */
  timeoutMs: number;
  /** Environment (`EPICS_CA_*`). */
  env?: Record<string, string | undefined>;
  /** Mask values overriding the per-type default. */
  mask?: MaskValues;
}

/** Splits a `{prefix}channels` value (STRING array, or CHAR array with comma-separated text). */
export function channelNamesFrom(value: CaValue["value"]): string[] {
  let items: string[];
  if (Array.isArray(value)) items = value.flatMap((s) => s.split(","));
  else if (value instanceof Uint8Array) {
    const end = value.indexOf(0);
    items = new TextDecoder("latin1").decode(end < 0 ? value : value.subarray(0, end)).split(",");
  } else items = [];
  return items.map((s) => s.trim()).filter((s) => s !== "");
}

function maskFor(value: PixelArray, override: MaskValues | undefined): MaskValues {
  if (override) return override;
  // The IOC serves each pixel type in the smallest CA type holding it (lib/ioc_pvs.ts):
  // uint8 → CHAR, uint16 → LONG, uint32 → DOUBLE; mask their all-ones values.
  if (value instanceof Uint8Array) return defaultMaskValues("uint8");
  if (value instanceof Int32Array) return [0xffff, -1];
  if (value instanceof Float64Array) return defaultMaskValues("uint32");
  return [];
}

function firstNumber(v: CaValue): number | undefined {
  const x = v.value;
  if (Array.isArray(x)) {
    const n = Number(x[0]);
    return Number.isFinite(n) ? n : undefined;
  }
  return x.length > 0 ? Number(x[0]) : undefined;
}

function firstString(v: CaValue): string {
  const x = v.value;
  return Array.isArray(x) ? (x[0] ?? "") : x.length > 0 ? String(x[0]) : "";
}

/** Creates the Channel Access source. */
export function createCaSource(options: CaSourceOptions): ViewSource {
  const prefix = options.prefix;
  let client: CaClient | undefined;
  let listener: (change: SourceChange, message?: string) => void = () => {};
  let snapshot: ViewSnapshot = {
    state: "SEARCHING",
    seriesId: "",
    ssqcnt: undefined,
    channels: [],
  };
  let lastState = "";
  const sizes = new Map<string, [number, number, number]>();

  function updateChannel(name: string, patch: Partial<ChannelData>): void {
    snapshot = {
      ...snapshot,
      channels: snapshot.channels.map((c) => (c.name === name ? { ...c, ...patch } : c)),
    };
  }

  return {
    async start(signal) {
      const env = options.env ?? Deno.env.toObject();
      const c = createCaClient({ env });
      client = c;
      const stateCh = c.channel(`${prefix}state`);
      const seconds = (options.timeoutMs / 1000).toFixed(1).replace(/\.0$/, "");
      try {
        await stateCh.connected(AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)]));
      } catch {
        const where = readClientEnv(env).addresses.map((a) =>
          `${a.hostname}:${a.port}`
        ).join(" ") ||
          "(no search addresses: set EPICS_CA_ADDR_LIST)";
        throw new SourceUnreachableError(
          `no IOC answers for ${prefix}state within ${seconds} s (searched ${where})`,
        );
      }
      let names = options.channels;
      if (!names || names.length === 0) {
        const listCh = c.channel(`${prefix}channels`);
        try {
          const t = AbortSignal.any([
            signal,
            AbortSignal.timeout(Math.min(2000, options.timeoutMs)),
          ]);
          await listCh.connected(t);
          const type = listCh.nativeType === DBR.CHAR ? DBR.CHAR : DBR.STRING;
          names = channelNamesFrom((await listCh.get({ type, signal: t })).value);
        } catch {
          names = [];
        } finally {
          listCh.close();
        }
        if (names.length === 0) {
          throw new Error(
            `the IOC does not list its channels (${prefix}channels); give them with --channels a,b`,
          );
        }
      }
      snapshot = {
        ...snapshot,
        state: "CONNECTED",
        channels: names.map((name) => ({
          name,
          data: new Uint8Array(0),
          numImages: 0,
          width: 0,
          height: 0,
          mask: options.mask ?? [],
        })),
      };
      stateCh.subscribe((v) => {
        const s = firstString(v);
        lastState = s;
        snapshot = { ...snapshot, state: s };
        listener("status");
      }, { type: DBR.TIME_STRING });
      stateCh.onConnection((up) => {
        if (!up) {
          snapshot = { ...snapshot, state: "DISCONNECTED" };
          log.info("IOC connection lost", { prefix });
          listener("status", "IOC connection lost, searching...");
        } else {
          log.info("IOC reconnected", { prefix });
          snapshot = { ...snapshot, state: lastState || "CONNECTED" };
          listener("status", "IOC reconnected");
        }
      });
      c.channel(`${prefix}uuid`).subscribe((v) => {
        snapshot = { ...snapshot, seriesId: firstString(v) };
      }, { type: DBR.TIME_STRING });
      c.channel(`${prefix}ssqcnt`).subscribe((v) => {
        snapshot = { ...snapshot, ssqcnt: firstNumber(v) };
      }, { type: DBR.TIME_DOUBLE });
      for (const name of names) {
        sizes.set(name, [0, 0, 0]);
        for (let axis = 0; axis < 3; axis++) {
          c.channel(`${prefix}${name}:asize${axis}`).subscribe((v) => {
            const s = sizes.get(name)!;
            s[axis] = firstNumber(v) ?? 0;
          }, { type: DBR.TIME_LONG });
        }
        c.channel(`${prefix}${name}:image`).subscribe((v) => {
          const data = v.value;
          if (Array.isArray(data) || data.length === 0) return;
          const [n, h, w] = sizes.get(name)!;
          let width = w;
          let height = h;
          let numImages = n;
          if (width <= 0 || height <= 0 || width * height > data.length) {
            // sizes unknown or not yet updated: show the array as one square-ish image
            width = Math.ceil(Math.sqrt(data.length));
            height = Math.max(1, Math.floor(data.length / width));
            numImages = 1;
          }
          numImages = Math.max(
            1,
            Math.min(numImages || 1, Math.floor(data.length / (width * height))),
          );
          updateChannel(name, {
            data,
            width,
            height,
            numImages,
            mask: maskFor(data, options.mask),
          });
          // one frame per update of the last channel: the IOC posts the channels of a series in
          // order, so the series is complete then (drawing earlier would mix two series)
          if (name === names![names!.length - 1]) listener("image");
        });
      }
    },
    snapshot: () => snapshot,
    onChange(l) {
      listener = l;
    },
    async close() {
      await client?.close();
    },
  };
}
