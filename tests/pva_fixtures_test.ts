/**
 * Interop with PVXS without PVXS: replays the bytes recorded from the real PVXS tools
 * (`tests/fixtures/pva/`, see its README). Our server must accept every message the PVXS clients
 * sent and answer with the same bytes it gave them then wherever the protocol fixes the bytes
 * (the tools accepted those); our client-side decoder must accept everything PVXS's own server
 * (softIocPVX) sent.
 */
import assert from "node:assert/strict";
import { ServerConnection } from "../pva/connection.ts";
import { type PvaSource, recordSource } from "../pva/source.ts";
import { ndArraySource } from "../pva/source.ts";
import { Cmd, decodeHeader, HEADER_SIZE, isBigEndian, Sub } from "../pva/messages.ts";
import { WireReader } from "../pva/wire.ts";
import {
  readChanged,
  readFieldDesc,
  type StructDesc,
  type StructValue,
  type TypeCache,
} from "../pva/pvdata.ts";
import { decodeSearch, decodeSearchResponse } from "../pva/search.ts";
import { FIXTURE_IMAGE, fixtureStore } from "./support/pva_fixture_pvs.ts";
import { concat } from "./support/bytes.ts";

interface Fixture {
  peer: "diss" | "pvxs";
  tool: string;
  args: string[];
  exitCode: number;
  output: string[];
  client: string[];
  server?: string[];
}

const DIR = new URL("./fixtures/pva/", import.meta.url);
const fixtures: [string, Fixture][] = [];
for (const entry of Deno.readDirSync(DIR)) {
  if (!entry.name.endsWith(".json")) continue;
  fixtures.push([entry.name, JSON.parse(Deno.readTextFileSync(new URL(entry.name, DIR)))]);
}
fixtures.sort(([a], [b]) => a.localeCompare(b));

function bytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}

function hexOf(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Splits a byte stream into whole messages. */
function split(stream: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at + HEADER_SIZE <= stream.length) {
    const h = decodeHeader(stream, at);
    const len = HEADER_SIZE + (h.flags & 1 ? 0 : h.size);
    out.push(stream.subarray(at, at + len));
    at += len;
  }
  assert.equal(at, stream.length, "whole messages");
  return out;
}

async function replay(
  f: Fixture,
): Promise<{ out: Uint8Array[]; closed: string[]; errors: string[] }> {
  const store = fixtureStore();
  const sources = new Map<string, PvaSource>();
  for (const name of store.names()) sources.set(name, recordSource(store.get(name)!));
  const nd = ndArraySource(store.get("R:img")!, {
    width: 4,
    height: 3,
    images: 1,
    pixel: "ushort",
  });
  nd.setFrame({ uniqueId: 42, dataTime: 1700000000005, attributes: [] });
  store.get("R:img")!.post(FIXTURE_IMAGE);
  sources.set("R:img", nd);
  const closed: string[] = [];
  const errors: string[] = [];
  const conn = new ServerConnection({
    resolve: (n) => sources.get(n),
    identity: { guid: new Uint8Array(12), tcpPort: 5075 },
    address: "127.0.0.1",
    wake: () => {},
    onClose: (r) => closed.push(r),
    log: (level, message, fields) => {
      if (level === "warning" || level === "error") errors.push(`${message} ${fields.reason}`);
    },
  });
  const out: Uint8Array[] = [...split(concat(...conn.takeOutput()))];
  for (const m of f.client) {
    conn.receive(bytes(m));
    await new Promise((resolve) => setTimeout(resolve, 0)); // PUT handlers settle
    out.push(...split(concat(...conn.takeOutput())));
    // Monitors: one round of updates per client message, as a live connection would.
    out.push(...split(concat(...conn.takeOutput())));
  }
  return { out, closed, errors };
}

/** Commands whose reply bytes do not depend on time or on the server's GUID/port. */
function fixedBytes(m: Uint8Array): boolean {
  const cmd = m[3];
  if (m[2] & 1) return true; // control
  if (cmd === Cmd.SEARCH_RESPONSE || cmd === Cmd.MONITOR && m[8 + 4] === 0) return false;
  if ((cmd === Cmd.GET || cmd === Cmd.PUT) && (m[8 + 4] & Sub.INIT) === 0) {
    // Data replies carry time stamps; status-only PUT replies are fixed.
    return cmd === Cmd.PUT && (m[8 + 4] & Sub.GET) === 0;
  }
  return true;
}

for (const [name, f] of fixtures.filter(([, f]) => f.client.length > 1)) {
  Deno.test(`pva fixture ${name}: our server accepts what PVXS ${f.tool} sent`, async () => {
    const { out, closed, errors } = await replay(f);
    assert.deepEqual(closed, [], "connection stays open");
    assert.deepEqual(errors, []);
    if (f.peer !== "diss" || f.server === undefined) {
      assert.ok(out.length >= 3);
      return;
    }
    // Same replies, message by message; byte-equal where the protocol fixes the bytes.
    const recorded = f.server.map(bytes);
    const n = f.tool === "pvxmonitor" ? 4 : recorded.length; // later updates race with time
    for (let i = 0; i < n; i++) {
      assert.ok(out[i], `reply ${i} missing`);
      assert.equal(out[i][3], recorded[i][3], `reply ${i} command`);
      if (fixedBytes(recorded[i])) {
        assert.equal(hexOf(out[i]), hexOf(recorded[i]), `reply ${i} bytes`);
      }
    }
  });
}

Deno.test("pva fixture diss-search-udp.json: the PVXS UDP search decodes", () => {
  const [, f] = fixtures.find(([n]) => n === "diss-search-udp.json")!;
  assert.equal(f.exitCode, 0);
  const d = bytes(f.client[0]);
  const h = decodeHeader(d);
  assert.equal(h.command, Cmd.SEARCH);
  const s = decodeSearch(new WireReader(d.subarray(8, 8 + h.size), !isBigEndian(h.flags)));
  assert.deepEqual(s.protocols, ["tcp"]);
  assert.deepEqual(s.channels.map((c) => c.name), ["R:d"]);
  assert.equal(s.sequence, 0x66696e64);
});

/** Decodes a server-to-client stream as a client does; returns the values of data replies. */
function decodeServerStream(messages: Uint8Array[], refusal?: string): {
  types: Map<number, StructDesc>;
  values: StructValue[];
  fieldTypes: StructDesc[];
  searches: number;
} {
  const rx: TypeCache = new Map();
  const types = new Map<number, StructDesc>();
  const values: StructValue[] = [];
  const fieldTypes: StructDesc[] = [];
  let searches = 0;
  for (const m of messages) {
    const h = decodeHeader(m);
    assert.ok(h.flags & 0x40, "server direction");
    if (h.flags & 1) continue;
    const r = new WireReader(m.subarray(8, 8 + h.size), !isBigEndian(h.flags));
    switch (h.command) {
      case Cmd.CONNECTION_VALIDATION:
        r.u32();
        r.u16();
        assert.deepEqual(
          Array.from({ length: r.size() }, () => r.string()),
          ["anonymous", "ca"],
        );
        break;
      case Cmd.CONNECTION_VALIDATED:
        assert.equal(r.status().type, 0);
        break;
      case Cmd.SEARCH_RESPONSE:
        assert.equal(decodeSearchResponse(r).found, true);
        searches++;
        break;
      case Cmd.CREATE_CHANNEL:
        r.u32();
        r.u32();
        assert.equal(r.status().type, 0);
        break;
      case Cmd.GET_FIELD: {
        r.u32();
        assert.equal(r.status().type, 0);
        fieldTypes.push(readFieldDesc(r, rx) as StructDesc);
        break;
      }
      case Cmd.GET:
      case Cmd.PUT:
      case Cmd.MONITOR: {
        const ioid = r.u32();
        const sub = r.u8();
        if (sub & Sub.INIT) {
          assert.equal(r.status().type, 0);
          types.set(ioid, readFieldDesc(r, rx) as StructDesc);
          break;
        }
        if (h.command !== Cmd.MONITOR) {
          const status = r.status();
          if (refusal !== undefined && status.type > 1) {
            assert.equal(status.message, refusal);
            break;
          }
          assert.ok(status.type <= 1, status.message);
        }
        if (r.remaining === 0) break; // PUT done
        const value: StructValue = {};
        readChanged(r, types.get(ioid)!, value, rx);
        if (h.command === Cmd.MONITOR) r.bitSet();
        assert.equal(r.remaining, 0, "whole reply consumed");
        values.push(value);
        break;
      }
      default:
        break;
    }
  }
  return { types, values, fieldTypes, searches };
}

for (const [name, f] of fixtures.filter(([, f]) => f.server !== undefined)) {
  Deno.test(`pva fixture ${name}: our client decoder accepts what the ${f.peer} server sent`, () => {
    const refusal = name === "diss-put-refused.json" ? "Invalid duration: must be >= 0" : undefined;
    const decoded = decodeServerStream(f.server!.map(bytes), refusal);
    if (refusal !== undefined) assert.match(f.output.join("\n"), new RegExp(refusal));
    assert.equal(decoded.searches, 1, "found by TCP search");
    if (f.tool === "pvxget") {
      assert.equal(decoded.values.length, 1);
      const v = decoded.values[0];
      const printed = f.output.join("\n");
      if (name.includes("double")) {
        assert.equal(v.value, 1.5);
        assert.match(printed, /value double = 1\.5/);
      }
      if (name.includes("string")) assert.equal(v.value, "READY");
      if (name.includes("enum")) {
        assert.deepEqual(v.value, { index: 1, choices: ["Off", "On"] });
      }
      if (name.includes("ndarray")) {
        assert.deepEqual((v.value as { value: Uint16Array }).value, FIXTURE_IMAGE);
        assert.match(printed, /value->ushortValue uint16_t\[\] = \{12\}/);
      }
    }
    if (f.tool === "pvxinfo") assert.equal(decoded.fieldTypes[0].id, "epics:nt/NTScalar:1.0");
    if (f.tool === "pvxmonitor") assert.ok(decoded.values.length >= 2, "several updates");
  });
}
