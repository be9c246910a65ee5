/**
 * `diss-ioc view`: shows detector images in the terminal, either from a backend run under the
 * controller (`--backend NAME`, like the original diss-view) or from a running IOC over Channel
 * Access (`--connect PREFIX`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { DeviceClass } from "../../devices/contract.ts";
import { resolveBackend } from "../../devices/registry.ts";
import { getLog } from "../../core/log.ts";
import { type ColormapName, getColormap, isColormapName, nextColormap } from "./colormap.ts";
import { CONTRAST_LEVELS, DEFAULT_CONTRAST_LEVEL, type MaskValues } from "./contrast.ts";
import { parseKeys, type ViewKey } from "./keys.ts";
import { encodePng } from "./png.ts";
import { type ChannelImage, indexImage, type OutputMode, renderFrame } from "./render.ts";
import type { ScaleMode } from "./scale.ts";
import { type ChannelData, SourceUnreachableError, type ViewSource } from "./source.ts";
import { createCaSource } from "./source_ca.ts";
import { createControllerSource } from "./source_controller.ts";
import { formatStatus, FrameRate } from "./status.ts";
import { cellGeometry, supportsSixel } from "./terminal_replies.ts";
import { denoTerminal, InputPump, probeTerminal, ScreenSession, type TerminalIo } from "./tty.ts";

const log = getLog("view");

/** Exit codes of `diss-ioc view`. */
export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, UNREACHABLE: 3 } as const;

/** Usage text. */
export const VIEW_USAGE = `Usage: diss-ioc view (--backend NAME | --connect PREFIX) [options]

Sources:
  --backend NAME        run this backend under the controller (like the original diss-view)
  --auto-acquire SECS   acquisition duration in backend mode (default: DISS_AUTO_ACQUIRE, else 1;
                        0 = off)
  --connect PREFIX      show a running IOC over Channel Access (e.g. DISS:example:)
  --channels a,b        channel names (default: read from {PREFIX}channels)
  --timeout SECS        how long to search for the IOC (default 5)

Display:
  --output MODE         auto (default), sixel, halfblock or none
  --scale linear|log    value scale (default linear; key l)
  --colormap NAME       gray, viridis or inferno (default gray; key m)
  --channel NAME|all    channel shown first (default all; key c)
  --image N             image of the series (default 0; keys left/right)
  --contrast N          contrast level 0..${
  CONTRAST_LEVELS.length - 1
} (default ${DEFAULT_CONTRAST_LEVEL}; keys +/-)
  --mask V1,V2          pixel values shown as masked (default: all-ones of the pixel type)
  --png FILE            write the latest frame as PNG (native resolution)
  --frames N            exit after N new frames
  --query-timeout MS    wait for terminal capability replies (default 1000)
  --cell WxH            character cell size in pixels when the terminal does not tell

Keys: q quit, c next channel/all, l log/linear, m colour map, left/right image, +/- contrast.`;

/** Everything {@link runView} can be given instead of the real process (tests, embedding). */
export interface ViewDeps {
  /** Terminal I/O; default stdin/stdout. */
  io?: TerminalIo;
  /** Resolves a backend name to its class; default the IOC's registry (devices/registry.ts). */
  loadBackend?: (name: string) => Promise<DeviceClass>;
  /** Environment; default the process environment. */
  env?: Record<string, string | undefined>;
  /** Where user-facing messages go; default standard error. */
  message?: (line: string) => void;
  /** Aborts the viewer from outside (like Ctrl-C). */
  signal?: AbortSignal;
  /** Image source to use instead of the one the arguments name (tests, embedding). */
  source?: ViewSource;
}

/** Parsed command line of the viewer. */
export interface ViewOptions {
  backend?: string;
  autoAcquire?: number;
  connect?: string;
  channels?: string[];
  timeout: number;
  output: "auto" | OutputMode | "none";
  scale: ScaleMode;
  colormap: ColormapName;
  channel: string;
  image: number;
  contrast: number;
  mask?: MaskValues;
  png?: string;
  frames?: number;
  queryTimeout: number;
  cell?: { width: number; height: number };
}

/** Thrown for a bad command line (exit code 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function parseNumber(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!Number.isFinite(v) || v < min) {
    throw new UsageError(`--${name}: not a number >= ${min}: ${text}`);
  }
  return v;
}

/** Parses the viewer's arguments (after `view`). Throws {@link UsageError}. */
export function parseViewArgs(
  argv: string[],
  env: Record<string, string | undefined>,
): ViewOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        backend: { type: "string" },
        "auto-acquire": { type: "string" },
        connect: { type: "string" },
        channels: { type: "string" },
        timeout: { type: "string" },
        output: { type: "string" },
        scale: { type: "string" },
        colormap: { type: "string" },
        channel: { type: "string" },
        image: { type: "string" },
        contrast: { type: "string" },
        mask: { type: "string" },
        png: { type: "string" },
        frames: { type: "string" },
        "query-timeout": { type: "string" },
        cell: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) throw new UsageError("");
  if ((v.backend === undefined) === (v.connect === undefined)) {
    throw new UsageError("give exactly one of --backend NAME or --connect PREFIX");
  }
  const output = v.output ?? "auto";
  if (!["auto", "sixel", "halfblock", "none"].includes(output)) {
    throw new UsageError(`--output: auto, sixel, halfblock or none, not ${output}`);
  }
  const scale = v.scale ?? "linear";
  if (scale !== "linear" && scale !== "log") {
    throw new UsageError(`--scale: linear or log, not ${scale}`);
  }
  const colormap = v.colormap ?? "gray";
  if (!isColormapName(colormap)) throw new UsageError(`--colormap: unknown map ${colormap}`);
  let autoAcquire: number | undefined;
  const autoText = v["auto-acquire"] ?? env.DISS_AUTO_ACQUIRE;
  if (autoText === undefined || autoText === "") autoAcquire = 1;
  else if (/^(yes|true|on)$/i.test(autoText)) autoAcquire = 1;
  else if (/^(no|false|off)$/i.test(autoText)) autoAcquire = undefined;
  else {
    autoAcquire = parseNumber("auto-acquire", autoText, 0);
    if (autoAcquire === 0) autoAcquire = undefined;
  }
  let cell: { width: number; height: number } | undefined;
  if (v.cell !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(v.cell);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) {
      throw new UsageError(`--cell: WxH, not ${v.cell}`);
    }
    cell = { width: Number(m[1]), height: Number(m[2]) };
  }
  const contrast = parseNumber("contrast", v.contrast, 0) ?? DEFAULT_CONTRAST_LEVEL;
  if (contrast >= CONTRAST_LEVELS.length || !Number.isInteger(contrast)) {
    throw new UsageError(`--contrast: 0..${CONTRAST_LEVELS.length - 1}`);
  }
  const frames = parseNumber("frames", v.frames, 1);
  const mask = v.mask === undefined
    ? undefined
    : v.mask.split(",").filter((s) => s !== "").map((s) => {
      const n = Number(s);
      if (!Number.isFinite(n)) throw new UsageError(`--mask: not a number: ${s}`);
      return n;
    });
  return {
    backend: v.backend,
    autoAcquire,
    connect: v.connect,
    channels: v.channels?.split(",").map((s) => s.trim()).filter((s) => s !== ""),
    timeout: parseNumber("timeout", v.timeout, 0.1) ?? 5,
    output: output as ViewOptions["output"],
    scale,
    colormap,
    channel: v.channel ?? "all",
    image: parseNumber("image", v.image, 0) ?? 0,
    contrast,
    mask,
    png: v.png,
    frames: frames === undefined ? undefined : Math.floor(frames),
    queryTimeout: parseNumber("query-timeout", v["query-timeout"], 0) ?? 1000,
    cell,
  };
}

/** Interactive display settings, changed by keys. */
export interface DisplayState {
  /** Index of the shown channel, or -1 for all. */
  channel: number;
  image: number;
  scale: ScaleMode;
  colormap: ColormapName;
  contrast: number;
}

/** Applies a key to the display state (pure); returns the new state, or "quit". */
export function applyKey(
  state: DisplayState,
  key: ViewKey,
  numChannels: number,
  numImages: number,
): DisplayState | "quit" {
  switch (key) {
    case "quit":
      return "quit";
    case "channel":
      // all → 0 → 1 → ... → last → all
      return { ...state, channel: state.channel + 1 >= numChannels ? -1 : state.channel + 1 };
    case "scale":
      return { ...state, scale: state.scale === "linear" ? "log" : "linear" };
    case "colormap":
      return { ...state, colormap: nextColormap(state.colormap) };
    case "left":
      return { ...state, image: Math.max(0, state.image - 1) };
    case "right":
      return { ...state, image: Math.min(Math.max(0, numImages - 1), state.image + 1) };
    case "contrast+":
      return { ...state, contrast: Math.min(CONTRAST_LEVELS.length - 1, state.contrast + 1) };
    case "contrast-":
      return { ...state, contrast: Math.max(0, state.contrast - 1) };
  }
}

/** The images to show for a display state (channels with data, image index clamped). */
export function selectImages(channels: ChannelData[], state: DisplayState): ChannelImage[] {
  const chosen = state.channel >= 0 && state.channel < channels.length
    ? [channels[state.channel]]
    : channels;
  const out: ChannelImage[] = [];
  for (const ch of chosen) {
    const size = ch.width * ch.height;
    if (ch.numImages < 1 || size < 1 || ch.data.length < size) continue;
    const available = Math.min(ch.numImages, Math.floor(ch.data.length / size));
    const index = Math.min(state.image, available - 1);
    out.push({
      name: ch.name,
      data: ch.data,
      offset: index * size,
      width: ch.width,
      height: ch.height,
      mask: ch.mask,
    });
  }
  return out;
}

/** Composes the shown images at native resolution into one PNG (grid, 4-pixel gaps). */
export function frameToPng(images: ChannelImage[], state: DisplayState): Uint8Array | undefined {
  if (images.length === 0) return undefined;
  const gap = 4;
  const cols = Math.ceil(Math.sqrt(images.length));
  const rows = Math.ceil(images.length / cols);
  const w = images[0].width;
  const h = images[0].height;
  const W = cols * w + (cols - 1) * gap;
  const H = rows * h + (rows - 1) * gap;
  const canvas = new Uint8Array(W * H);
  images.forEach((img, i) => {
    const x0 = (i % cols) * (w + gap);
    const y0 = Math.floor(i / cols) * (h + gap);
    const ww = Math.min(w, img.width);
    const hh = Math.min(h, img.height);
    const { indices } = indexImage(img, img.width, img.height, state.scale, state.contrast);
    for (let y = 0; y < hh; y++) {
      canvas.set(indices.subarray(y * img.width, y * img.width + ww), (y0 + y) * W + x0);
    }
  });
  return encodePng(canvas, W, H, getColormap(state.colormap));
}

type AppEvent =
  | { type: "image" }
  | { type: "status"; message?: string }
  | { type: "key"; key: ViewKey }
  | { type: "resize" }
  | { type: "stop"; reason: string; error?: Error };

/** A tiny async queue of app events. */
class EventQueue {
  #items: AppEvent[] = [];
  #waiter: (() => void) | undefined;
  push(e: AppEvent): void {
    this.#items.push(e);
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
  async take(): Promise<AppEvent[]> {
    while (this.#items.length === 0) {
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
    const items = this.#items;
    this.#items = [];
    return items;
  }
}

function writeMessage(line: string): void {
  const bytes = new TextEncoder().encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/**
 * Runs `diss-ioc view` with the arguments after `view`. Returns the exit code: 0 after `q`,
 * `--frames` or an abort; 2 for bad usage; 3 when the IOC cannot be found; 1 for other failures.
 * The terminal is restored on every path (normal exit, error, Ctrl-C).
 */
export async function runView(argv: string[], deps: ViewDeps = {}): Promise<number> {
  const env = deps.env ?? Deno.env.toObject();
  const say = deps.message ?? writeMessage;
  let options: ViewOptions;
  try {
    options = parseViewArgs(argv, env);
  } catch (err) {
    if (err instanceof UsageError) {
      if (err.message) say(`diss-ioc view: ${err.message}`);
      say(VIEW_USAGE);
      return err.message ? EXIT.USAGE : EXIT.OK;
    }
    throw err;
  }
  const io = deps.io ?? denoTerminal();

  // output mode: graphics only on a terminal unless forced
  let output: OutputMode | "none";
  if (options.output === "auto") {
    if (!io.outputIsTerminal) {
      if (options.png === undefined) {
        say(
          "diss-ioc view: standard output is not a terminal; use --png FILE (and --frames N), or --output sixel|halfblock to force graphics",
        );
        return EXIT.USAGE;
      }
      output = "none";
    } else output = "halfblock";
  } else output = options.output;

  let source: ViewSource;
  if (deps.source) source = deps.source;
  else if (options.connect !== undefined) {
    source = createCaSource({
      prefix: options.connect,
      channels: options.channels,
      timeoutMs: options.timeout * 1000,
      env,
      mask: options.mask,
    });
  } else {
    let backend: DeviceClass;
    try {
      backend = await (deps.loadBackend ?? resolveBackend)(options.backend!);
    } catch (err) {
      say(`diss-ioc view: cannot load backend ${options.backend}: ${(err as Error).message}`);
      return EXIT.USAGE;
    }
    source = createControllerSource({
      backend,
      autoAcquire: options.autoAcquire,
      env,
      mask: options.mask,
    });
  }

  const events = new EventQueue();
  const stop = new AbortController();
  const session = new ScreenSession(io);
  const input = new InputPump(io);
  const onSignal = () => events.push({ type: "stop", reason: "signal" });
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM", "SIGHUP"];
  const installSignals = deps.io === undefined;
  if (installSignals) { for (const s of signals) Deno.addSignalListener(s, onSignal); }
  const onAbort = () => events.push({ type: "stop", reason: "abort" });
  deps.signal?.addEventListener("abort", onAbort);
  let removeResize = () => {};
  let note: string | undefined;
  const interactive = output !== "none" && io.inputIsTerminal;

  try {
    // terminal capabilities
    let cellWidth = options.cell?.width ?? 10;
    let cellHeight = options.cell?.height ?? 20;
    if (interactive || output !== "none") await session.enter(output !== "none");
    if (interactive) {
      input.start();
      if (options.output === "auto" || (output === "sixel" && !options.cell)) {
        const probe = await probeTerminal(io, input, options.queryTimeout);
        if (!probe.answered) {
          note = "terminal did not answer capability queries: half blocks";
          log.info("Terminal did not answer capability queries", {
            timeoutMs: options.queryTimeout,
          });
        } else if (options.output === "auto" && supportsSixel(probe.replies)) output = "sixel";
        if (output === "sixel") {
          const { cols, rows } = io.size();
          ({ cellWidth, cellHeight } = cellGeometry(probe.replies, cols, rows, {
            cellWidth,
            cellHeight,
          }));
        }
      }
      (async () => {
        while (true) {
          const chunk = await input.next();
          if (chunk === null || chunk === undefined) break;
          for (const key of parseKeys(chunk)) events.push({ type: "key", key });
        }
      })();
      removeResize = io.onResize(() => events.push({ type: "resize" }));
    }

    source.onChange((change, message) => {
      if (change === "image") events.push({ type: "image" });
      else events.push({ type: "status", message });
    });
    const started = source.start(stop.signal).then(
      () => events.push({ type: "status" }),
      (err) => events.push({ type: "stop", reason: "error", error: err as Error }),
    );

    let display: DisplayState = {
      channel: -1,
      image: options.image,
      scale: options.scale,
      colormap: options.colormap,
      contrast: options.contrast,
    };
    let channelChosen = options.channel === "all";
    const rate = new FrameRate();
    let frames = 0;
    let lastLayoutKey = "";
    let exitCode: number = EXIT.OK;
    let pngDirty = false;

    const draw = async () => {
      const snap = source.snapshot();
      if (!channelChosen && snap.channels.length > 0) {
        const i = snap.channels.findIndex((c) => c.name === options.channel);
        if (i < 0) note = `no channel ${options.channel}; showing all`;
        display = { ...display, channel: i };
        channelChosen = true;
      }
      const images = selectImages(snap.channels, display);
      if (options.png !== undefined && pngDirty && images.length > 0) {
        const png = frameToPng(images, display);
        if (png) {
          const tmp = `${options.png}.tmp`;
          await Deno.writeFile(tmp, png);
          await Deno.rename(tmp, options.png);
          pngDirty = false;
        }
      }
      if (output === "none") return;
      const { cols, rows } = io.size();
      const screen = output === "sixel"
        ? { cols, rows, cellWidth, cellHeight }
        : { cols, rows, cellWidth: 1, cellHeight: 2 };
      const layoutKey = `${cols}x${rows}:${output}:${
        images.map((i) => `${i.name}/${i.width}x${i.height}`).join(",")
      }`;
      const parts: (string | Uint8Array)[] = [];
      if (layoutKey !== lastLayoutKey) {
        parts.push("\x1b[2J");
        lastLayoutKey = layoutKey;
      }
      let stats;
      if (images.length > 0) {
        const r = renderFrame(images, {
          output,
          screen,
          scale: display.scale,
          colormap: display.colormap,
          contrastLevel: display.contrast,
        });
        parts.push(r.bytes);
        stats = r.stats[0];
      } else {
        parts.push(
          `\x1b[1;1H${
            snap.channels.length === 0 ? "waiting for the channel list..." : "waiting for images..."
          }\x1b[K`,
        );
      }
      const first = images[0];
      const ch = snap.channels[Math.max(0, display.channel)];
      const status = formatStatus({
        state: snap.state,
        seriesId: snap.seriesId,
        ssqcnt: snap.ssqcnt,
        imageIndex: first ? Math.round(first.offset / Math.max(1, first.width * first.height)) : 0,
        numImages: ch?.numImages ?? 0,
        width: first?.width ?? 0,
        height: first?.height ?? 0,
        stats,
        fps: rate.fps,
        scale: display.scale,
        colormap: display.colormap,
        highPercentile: CONTRAST_LEVELS[display.contrast][1],
        selection: display.channel < 0 ? "all" : (ch?.name ?? "all"),
        note,
      }, cols - 1);
      parts.push(`\x1b[${rows};1H\x1b[7m${status}\x1b[0m\x1b[K`);
      for (const p of parts) await io.write(p);
    };

    await draw();
    loop: while (true) {
      const batch = await events.take();
      let redraw = false;
      for (const e of batch) {
        if (e.type === "stop") {
          if (e.error) {
            await session.restore();
            say(`diss-ioc view: ${e.error.message}`);
            exitCode = e.error instanceof SourceUnreachableError ? EXIT.UNREACHABLE : EXIT.ERROR;
          }
          break loop;
        }
        if (e.type === "key") {
          const snap = source.snapshot();
          const ch = snap.channels[Math.max(0, display.channel)];
          const next = applyKey(display, e.key, snap.channels.length, ch?.numImages ?? 1);
          if (next === "quit") break loop;
          display = next;
          channelChosen = true;
          pngDirty = true;
          redraw = true;
        } else if (e.type === "image") {
          frames++;
          rate.tick(Date.now());
          pngDirty = true;
          redraw = true;
        } else {
          if (e.type === "status" && e.message !== undefined) note = e.message;
          redraw = true;
        }
      }
      if (redraw) await draw();
      if (options.frames !== undefined && frames >= options.frames) break;
    }
    stop.abort();
    await started;
    return exitCode;
  } catch (err) {
    await session.restore();
    say(`diss-ioc view: ${(err as Error).message}`);
    return EXIT.ERROR;
  } finally {
    stop.abort();
    removeResize();
    deps.signal?.removeEventListener("abort", onAbort);
    if (installSignals) { for (const s of signals) Deno.removeSignalListener(s, onSignal); }
    await session.restore();
    await source.close().catch(() => {});
  }
}
