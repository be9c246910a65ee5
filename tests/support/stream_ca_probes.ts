/**
 * Channel Access probes while an EIGER series streams into the IOC, shared by
 * `tests/eiger_stream_ca_test.ts` and `scripts/bench/eiger_stream_ca_latency.ts`.
 *
 * One Python process (pyepics on Debian's libca) probes the IOC again and again, idle and during
 * an acquisition, in two ways:
 * - **pyepics**: a PV searched afresh (channel created, connected, read as a string, destroyed),
 *   as a user's `caget` does; the time includes libca's own search timing (new channels wait for
 *   the next tick of its search timer: up to its round-trip estimate, at least 32 ms);
 * - **raw**: the same search, create and read as single messages on a plain UDP socket and one TCP
 *   circuit (no libca), each timed from send to reply: the kernel's and the IOC's share alone.
 *
 * So the split of a slow probe is known: raw search/create/read = the server side (the IOC's
 * event loop, the CPU it got, the kernel), pyepics minus raw = the client library.
 *
 * @module
 */

import { runPyepics } from "./epics_env.ts";

/**
 * IOC environment (on top of the simulator's `env()`) for a series of `images` streamed at
 * detector speed: snapshot mode, two decode workers, generous timeouts (a loaded machine may send
 * or decode slower than 1 kHz; not what is measured), a decode backlog that holds the whole series.
 */
export function streamSeriesEnv(images: number): Record<string, string> {
  return {
    EIGER_DEVICE_MODE: "snapshot",
    EIGER_NUM_IMAGES: String(images),
    EIGER_DECODE_WORKERS: "2",
    DISS_ACQUIRE_OVERDUE: "300",
    EIGER_IMAGE_OVERDUE: "240",
    EIGER_DECODE_BACKLOG: String(images + 10),
    EIGER_REQUEST_TIMEOUT: "60",
    EIGER_POLL_INTERVAL: "1",
  };
}

/** Python (after the pyepics prelude): argv = prefix, duration, tcp port; prints one JSON object. */
export const STREAM_PROBE_SCRIPT = String.raw`
import socket, struct
P, duration, tcp_port = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
udp_port = int(__import__('os').environ['EPICS_CA_SERVER_PORT'])
NAME = P + 'version'
def msg(cmd, payload=b'', dtype=0, count=0, p1=0, p2=0):
    payload += b'\0' * (-len(payload) % 8)
    return struct.pack('>HHHHII', cmd, len(payload), dtype, count, p1, p2) + payload
def name_bytes(n):
    return n.encode() + b'\0'
class Raw:
    """Search on UDP, create and read on one TCP circuit; each step timed in ms."""
    def __init__(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(('127.0.0.1', 0))
        self.tcp = socket.create_connection(('127.0.0.1', tcp_port), timeout=30)
        self.tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b''
        self.cid = 1000
        self.tcp.sendall(msg(0, count=13) + msg(20, name_bytes('probe')) + msg(21, name_bytes('localhost')))
    def next_tcp(self, cmd):
        while True:
            while len(self.buf) >= 16:
                c, size, dtype, count, p1, p2 = struct.unpack('>HHHHII', self.buf[:16])
                if len(self.buf) < 16 + size:
                    break
                body, self.buf = self.buf[16:16 + size], self.buf[16 + size:]
                if c == cmd:
                    return dtype, count, p1, p2, body
            chunk = self.tcp.recv(65536)
            if not chunk:
                raise RuntimeError('circuit closed')
            self.buf += chunk
    def probe(self):
        self.cid += 1
        cid = self.cid
        t0 = time.time()
        self.udp.sendto(msg(0, count=13) + msg(6, name_bytes(NAME), dtype=5, count=13, p1=cid, p2=cid), ('127.0.0.1', udp_port))
        self.udp.settimeout(30)
        while True:
            data, _ = self.udp.recvfrom(4096)
            found = False
            for i in range(0, len(data) - 15, 16):
                c, size, dtype, count, p1, p2 = struct.unpack('>HHHHII', data[i:i + 16])
                if c == 6 and p2 == cid:
                    found = True
            if found:
                break
        t1 = time.time()
        self.tcp.sendall(msg(18, name_bytes(NAME), p1=cid, p2=13))
        _, _, _, sid, _ = self.next_tcp(18)
        t2 = time.time()
        self.tcp.sendall(msg(15, dtype=0, count=1, p1=sid, p2=cid))
        _, _, status, _, body = self.next_tcp(15)
        t3 = time.time()
        self.tcp.sendall(msg(12, p1=sid, p2=cid))
        self.next_tcp(12)
        return {'search': (t1 - t0) * 1000, 'create': (t2 - t1) * 1000, 'read': (t3 - t2) * 1000,
                'value': body.split(b'\0')[0].decode(), 'at': t0}
def probe():
    t0 = time.time()
    chid = ca.create_channel(NAME, connect=False, auto_cb=False)  # a search goes out
    ok = ca.connect_channel(chid, timeout=30)
    tc = time.time()
    value = ca.get(chid, timeout=30, as_string=True) if ok else None
    t1 = time.time()
    ca.clear_channel(chid)
    ca._cache[ca.current_context()].pop(NAME, None)  # the next probe searches afresh
    return {'ms': (t1 - t0) * 1000, 'connect': (tc - t0) * 1000, 'value': value, 'at': t0}
res = {'ready': wait(P + 'state', 'READY', 60)}
raw = Raw()
res['idle'] = [probe() for _ in range(12)]
res['idle_raw'] = [raw.probe() for _ in range(12)]
acq = epics.PV(P + 'acquire')
acq.wait_for_connection(30)
epics.caput(P + 'duration', duration, wait=True)
acq.put(1, wait=True)
busy = []
deadline = time.time() + 240
while time.time() < deadline:
    p = probe()
    p['raw'] = raw.probe()
    p['acquiring'] = acq.get(use_monitor=False, timeout=30) == 1
    busy.append(p)
    if not p['acquiring']:
        break
res['busy'] = busy
res['state'] = epics.caget(P + 'state', use_monitor=False)
res['error'] = epics.caget(P + 'error', use_monitor=False, as_string=True)
out(res)
`;

/** A raw probe: search, create and read round trips, ms. */
export interface RawProbe {
  search: number;
  create: number;
  read: number;
  value: string;
  at: number;
}

/** A pyepics probe (search afresh, connect, read), ms; during the series with its raw probe. */
export interface PyepicsProbe {
  ms: number;
  connect: number;
  value: string;
  at: number;
  acquiring?: boolean;
  raw?: RawProbe;
}

/** What {@link runStreamProbes} returns. */
export interface StreamProbes {
  ready: boolean;
  idle: PyepicsProbe[];
  idle_raw: RawProbe[];
  busy: (PyepicsProbe & { acquiring: boolean; raw: RawProbe })[];
  state: string;
  error: string;
}

/** Options of {@link runStreamProbes}. */
export interface StreamProbeOptions {
  /** The IOC's CA UDP and TCP ports. */
  udpPort: number;
  tcpPort: number;
  /** PV prefix. */
  prefix: string;
  /** Acquisition duration (frame time), seconds. */
  duration: number;
  /** Failure detector, ms. */
  timeoutMs?: number;
}

/**
 * Runs {@link STREAM_PROBE_SCRIPT}: 12 idle probes of each kind, then one acquisition with a
 * pyepics and a raw probe after another until `acquire` reads 0. Throws with the output when the
 * script fails.
 */
export async function runStreamProbes(options: StreamProbeOptions): Promise<StreamProbes> {
  const r = await runPyepics(STREAM_PROBE_SCRIPT, {
    udpPort: options.udpPort,
    args: [options.prefix, String(options.duration), String(options.tcpPort)],
    timeoutMs: options.timeoutMs ?? 300_000,
  });
  if (r.code !== 0 || r.json === undefined) {
    throw new Error(`probe script failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
  }
  return r.json as StreamProbes;
}

/** Median and maximum of some numbers (NaN for none). */
export function medianMax(xs: readonly number[]): { median: number; max: number } {
  if (xs.length === 0) return { median: NaN, max: NaN };
  const sorted = [...xs].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] };
}

/** Where the time of the probes during an acquisition went (ms; median and max of each part). */
export interface ProbeSplit {
  /** Probes that ran while the series streamed (ended while the acquisition ran). */
  count: number;
  /** pyepics probe (search afresh + connect + read). */
  pyepics: { median: number; max: number };
  /** Raw round trips: the server side (IOC + CPU it got + kernel). */
  search: { median: number; max: number };
  create: { median: number; max: number };
  read: { median: number; max: number };
  /** Raw search + create + read. */
  server: { median: number; max: number };
  /** pyepics minus the raw total of the same round (libca's own timing; clamped at 0). */
  client: { median: number; max: number };
  /** Probes over 100 ms: pyepics, and raw total. */
  over100: { pyepics: number; server: number };
}

/**
 * The probes that ran during the acquisition; with `streamStartMs` (epoch ms, the IOC's
 * `Series started` log time) only those that began after the stream started (not while the
 * detector was being armed).
 */
export function probesDuringStream(
  probes: StreamProbes,
  streamStartMs?: number,
): StreamProbes["busy"] {
  return probes.busy.filter((p) =>
    p.acquiring && (streamStartMs === undefined || p.at * 1000 >= streamStartMs)
  );
}

/** Epoch ms of a log line's leading ISO time (NaN when it has none). */
export function logLineTime(line: string): number {
  return Date.parse(line.split(" ")[0]);
}

/** The split of the probes that ran during the stream (see {@link probesDuringStream}). */
export function probeSplit(probes: StreamProbes, streamStartMs?: number): ProbeSplit {
  const during = probesDuringStream(probes, streamStartMs);
  const server = during.map((p) => p.raw.search + p.raw.create + p.raw.read);
  return {
    count: during.length,
    pyepics: medianMax(during.map((p) => p.ms)),
    search: medianMax(during.map((p) => p.raw.search)),
    create: medianMax(during.map((p) => p.raw.create)),
    read: medianMax(during.map((p) => p.raw.read)),
    server: medianMax(server),
    client: medianMax(during.map((p, i) => Math.max(0, p.ms - server[i]))),
    over100: {
      pyepics: during.filter((p) => p.ms > 100).length,
      server: server.filter((ms) => ms > 100).length,
    },
  };
}

/** One line for a log: `pyepics 58/329 ms, server 20/300 (search …, create …, read …), …`. */
export function formatSplit(s: ProbeSplit): string {
  const mm = (x: { median: number; max: number }) => `${x.median.toFixed(0)}/${x.max.toFixed(0)}`;
  return `${s.count} probes during the series (median/max ms): pyepics ${mm(s.pyepics)}, ` +
    `raw server round trips ${mm(s.server)} (search ${mm(s.search)}, create ${mm(s.create)}, ` +
    `read ${mm(s.read)}), libca's own share ${mm(s.client)}; over 100 ms: ` +
    `pyepics ${s.over100.pyepics}, raw ${s.over100.server}`;
}
