/**
 * The `diss-ioc eiger-sim` subcommand and an in-process starter for tests: a simulated EIGER2 DCU
 * with SIMPLON REST on `--api-port` and the stream v2 PUSH socket on `--stream-port`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { getLog } from "../../core/log.ts";
import { SimDetector, type SimLeftovers, type SimStreamOutput } from "./detector.ts";
import { createSimHandler } from "./server.ts";
import { startZmqStreamOutput } from "./stream.ts";

/** Options of {@link startEigerSim}. */
export interface EigerSimOptions {
  /** Listen address (default 127.0.0.1). */
  hostname?: string;
  /** SIMPLON HTTP port (default 0 = any free port). */
  apiPort?: number;
  /** Stream PUSH port (default 0 = any free port). */
  streamPort?: number;
  width?: number;
  height?: number;
  bitDepth?: number;
  /** `idle` (default) or `na` (the backend has to run `initialize`). */
  startState?: "idle" | "na";
  /** extg series end after the last image without a disarm (default true). */
  autoEnd?: boolean;
  /** API version served (default 1.8.0). */
  apiVersion?: string;
  /** Frequency of the simulated gates in Hz, for `real_time` in extg (default 104500). */
  gateFrequency?: number;
  /** Every series stopped early sends its rest late (see SimLeftovers; `--leftovers`). */
  leftovers?: SimLeftovers;
  /** Use this stream output instead of a ZeroMQ PUSH socket (in-process tests). */
  output?: SimStreamOutput;
}

/** A running simulator. */
export interface EigerSim {
  detector: SimDetector;
  /** Bound SIMPLON port. */
  apiPort: number;
  /** Bound stream port (0 when a custom output is used). */
  streamPort: number;
  hostname: string;
  /** Stops HTTP and stream servers. */
  close(): Promise<void>;
  /** Resolves when the HTTP server has stopped. */
  finished: Promise<void>;
}

/** Starts a simulator in this process. */
export async function startEigerSim(options: EigerSimOptions = {}): Promise<EigerSim> {
  const hostname = options.hostname ?? "127.0.0.1";
  const detector = new SimDetector({
    width: options.width,
    height: options.height,
    bitDepth: options.bitDepth,
    startState: options.startState,
    autoEnd: options.autoEnd,
    gateFrequency: options.gateFrequency,
    leftovers: options.leftovers,
  });
  const shutdown = new AbortController();
  let streamPort = 0;
  let closeStream = () => Promise.resolve();
  if (options.output !== undefined) detector.output = options.output;
  else {
    const zmq = startZmqStreamOutput({
      hostname,
      port: options.streamPort ?? 0,
      signal: shutdown.signal,
    });
    detector.output = zmq;
    streamPort = zmq.port;
    closeStream = () => zmq.close();
  }
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port: options.apiPort ?? 0,
      signal: shutdown.signal,
      onListen: () => {},
    }, createSimHandler(detector, options.apiVersion ?? "1.8.0", shutdown.signal));
  } catch (error) {
    shutdown.abort();
    await closeStream();
    throw error;
  }
  let closed = false;
  return {
    detector,
    apiPort: server.addr.port,
    streamPort,
    hostname,
    finished: server.finished,
    async close() {
      if (closed) return;
      closed = true;
      detector.close();
      shutdown.abort();
      await server.finished;
      await closeStream();
    },
  };
}

function intOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be an integer >= 0`);
  return n;
}

const USAGE = `usage: diss-ioc eiger-sim [options]
  --hostname ADDR      listen address (default 127.0.0.1)
  --api-port N         SIMPLON HTTP port (default 8080; 0 = any)
  --stream-port N      stream v2 ZeroMQ PUSH port (default 31001; 0 = any)
  --width N --height N image geometry (default 1028 x 512, EIGER2 X 500K)
  --bit-depth N        bit_depth_image for internal triggers: 8, 16, 32 (default 16)
  --start-state S      idle (default) or na (needs initialize)
  --no-auto-end        extg series wait for a disarm instead of ending after the last image
  --api-version V      served SIMPLON version (default 1.8.0)
  --gate-frequency HZ  simulated gate frequency for real_time in extg (default 104500)
  --leftovers AT       every series stopped early sends its rest late: before-start (before the
                       next series' start), after-start (after it) or on-request
                       (PUT /sim/control/leftovers)`;

/** Runs the simulator until SIGINT/SIGTERM; returns the process exit code. */
export async function runEigerSim(argv: string[]): Promise<number> {
  const log = getLog("eiger_sim");
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        hostname: { type: "string" },
        "api-port": { type: "string" },
        "stream-port": { type: "string" },
        width: { type: "string" },
        height: { type: "string" },
        "bit-depth": { type: "string" },
        "start-state": { type: "string" },
        "no-auto-end": { type: "boolean" },
        "api-version": { type: "string" },
        "gate-frequency": { type: "string" },
        leftovers: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  let sim: EigerSim;
  try {
    const startState = values["start-state"] ?? "idle";
    if (startState !== "idle" && startState !== "na") throw new Error("--start-state: idle or na");
    const width = intOption(values.width, "width", 1028);
    const height = intOption(values.height, "height", 512);
    if (width < 1 || height < 1) throw new Error("--width/--height must be >= 1");
    const gateFrequency = Number(values["gate-frequency"] ?? 104500);
    if (!(gateFrequency > 0)) throw new Error("--gate-frequency must be > 0");
    const at = values.leftovers;
    if (
      at !== undefined && at !== "before-start" && at !== "after-start" && at !== "on-request"
    ) {
      throw new Error("--leftovers: before-start, after-start or on-request");
    }
    sim = await startEigerSim({
      hostname: values.hostname ?? "127.0.0.1",
      apiPort: intOption(values["api-port"], "api-port", 8080),
      streamPort: intOption(values["stream-port"], "stream-port", 31001),
      width,
      height,
      bitDepth: intOption(values["bit-depth"], "bit-depth", 16),
      startState,
      autoEnd: !values["no-auto-end"],
      apiVersion: values["api-version"],
      gateFrequency,
      leftovers: at === undefined ? undefined : { at },
    });
  } catch (error) {
    console.error(`eiger-sim: ${(error as Error).message}`);
    return 1;
  }
  log.info("EIGER simulator running", {
    hostname: sim.hostname,
    apiPort: sim.apiPort,
    streamPort: sim.streamPort,
    width: sim.detector.width,
    height: sim.detector.height,
  });
  const stop = () => void sim.close();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await sim.finished;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  await sim.close();
  return 0;
}
