/**
 * GenICam evaluation over our own description fixture (every node type the backend supports),
 * the formula language, description URLs and zipped descriptions, and clear errors for what is
 * not supported or does not parse.
 */

import assert from "node:assert/strict";
import { GenicamError, NodeMap, type RegisterPort } from "../devices/gige/genicam.ts";
import { parseFormula } from "../devices/gige/formula.ts";
import { fetchDescription, parseDescriptionUrl, unzipFirst } from "../devices/gige/description.ts";
import { parseXml } from "../devices/gige/xml.ts";
import { zipArchive } from "../devices/gige_sim/zip_writer.ts";

const FIXTURE = `<?xml version="1.0" encoding="UTF-8"?>
<!-- our own fixture: one of each node type -->
<RegisterDescription SchemaMajorVersion="1" SchemaMinorVersion="1" SchemaSubMinorVersion="0"
  xmlns="http://www.genicam.org/GenApi/Version_1_1">
  <Group Comment="image">
    <Integer Name="Width">
      <pValue>WidthReg</pValue><Min>16</Min><pMax>WidthMax</pMax><Inc>8</Inc>
      <pIsLocked>Locked</pIsLocked>
    </Integer>
  </Group>
  <IntReg Name="WidthReg"><Address>0x100</Address><Length>4</Length><AccessMode>RW</AccessMode>
    <pPort>Device</pPort><Sign>Unsigned</Sign><Endianess>BigEndian</Endianess></IntReg>
  <IntSwissKnife Name="WidthMax"><pVariable Name="SW">SensorWidth</pVariable>
    <pVariable Name="OX">OffsetX</pVariable><Formula>SW - OX</Formula></IntSwissKnife>
  <Integer Name="SensorWidth"><Value>1024</Value></Integer>
  <Integer Name="OffsetX"><Value>24</Value><Min>0</Min><Max>1000</Max></Integer>
  <Integer Name="Locked"><Value>0</Value></Integer>
  <Integer Name="Selector"><Value>1</Value><Min>0</Min><Max>3</Max></Integer>
  <Integer Name="IndexedGain"><pIndex>Selector</pIndex>
    <ValueIndexed Index="0">10</ValueIndexed><pValueIndexed Index="1">OffsetX</pValueIndexed>
    <ValueDefault>99</ValueDefault></Integer>
  <IntReg Name="PerChannel"><Address>0x200</Address><pIndex Offset="0x10">Selector</pIndex>
    <Length>2</Length><AccessMode>RW</AccessMode><pPort>Device</pPort><Endianess>LittleEndian</Endianess></IntReg>
  <IntReg Name="Indirect"><pAddress>BaseAddress</pAddress><Address>0x4</Address><Length>4</Length>
    <AccessMode>RO</AccessMode><pPort>Device</pPort><Endianess>BigEndian</Endianess></IntReg>
  <Integer Name="BaseAddress"><Value>0x3FC</Value></Integer>
  <Float Name="ExposureTime"><pValue>ExposureReg</pValue><Min>1</Min><Max>1e6</Max><Unit>us</Unit></Float>
  <FloatReg Name="ExposureReg"><Address>0x300</Address><Length>8</Length><AccessMode>RW</AccessMode>
    <pPort>Device</pPort><Endianess>LittleEndian</Endianess></FloatReg>
  <Float Name="Temperature"><pValue>TemperatureReg</pValue></Float>
  <FloatReg Name="TemperatureReg"><Address>0x308</Address><Length>4</Length><AccessMode>RO</AccessMode>
    <pPort>Device</pPort><Cachable>NoCache</Cachable><Endianess>BigEndian</Endianess></FloatReg>
  <Enumeration Name="PixelFormat"><pValue>FormatReg</pValue>
    <EnumEntry Name="Mono8"><Value>17301505</Value></EnumEntry>
    <EnumEntry Name="Mono16"><Value>0x01100007</Value></EnumEntry>
    <EnumEntry Name="Mono12Packed"><Value>17563654</Value><pIsImplemented>HasPacked</pIsImplemented></EnumEntry>
    <EnumEntry Name="Mono10"><Value>17825795</Value><pIsAvailable>Locked</pIsAvailable></EnumEntry>
  </Enumeration>
  <IntReg Name="FormatReg"><Address>0x104</Address><Length>4</Length><AccessMode>RW</AccessMode>
    <pPort>Device</pPort><Endianess>BigEndian</Endianess></IntReg>
  <Integer Name="HasPacked"><Value>0</Value></Integer>
  <Boolean Name="ReverseX"><pValue>ReverseBit</pValue><OnValue>1</OnValue><OffValue>0</OffValue></Boolean>
  <MaskedIntReg Name="ReverseBit"><Address>0x108</Address><Length>4</Length><AccessMode>RW</AccessMode>
    <pPort>Device</pPort><Bit>30</Bit><Endianess>BigEndian</Endianess></MaskedIntReg>
  <Boolean Name="Odd"><pValue>OddValue</pValue><OnValue>321</OnValue><OffValue>123</OffValue></Boolean>
  <Integer Name="OddValue"><Value>123</Value></Integer>
  <MaskedIntReg Name="SignedField"><Address>0x10C</Address><Length>4</Length><AccessMode>RW</AccessMode>
    <pPort>Device</pPort><LSB>4</LSB><MSB>11</MSB><Sign>Signed</Sign><Endianess>LittleEndian</Endianess></MaskedIntReg>
  <StructReg Name="Status"><Address>0x1F0</Address><Length>4</Length><AccessMode>RW</AccessMode>
    <pPort>Device</pPort><Endianess>BigEndian</Endianess>
    <StructEntry Name="StatusLow"><LSB>31</LSB><MSB>16</MSB><Sign>Signed</Sign></StructEntry>
    <StructEntry Name="StatusHigh"><LSB>15</LSB><MSB>0</MSB></StructEntry>
    <StructEntry Name="StatusBit15"><Bit>15</Bit></StructEntry>
  </StructReg>
  <Command Name="AcquisitionStart"><pValue>CommandReg</pValue><CommandValue>1</CommandValue></Command>
  <IntReg Name="CommandReg"><Address>0x110</Address><Length>4</Length><AccessMode>WO</AccessMode>
    <pPort>Device</pPort><Cachable>NoCache</Cachable><Endianess>BigEndian</Endianess></IntReg>
  <String Name="DeviceUserID"><pValue>UserIdReg</pValue></String>
  <StringReg Name="UserIdReg"><Address>0x400</Address><Length>16</Length><AccessMode>RW</AccessMode><pPort>Device</pPort></StringReg>
  <String Name="Firmware"><Value>fw-1.2</Value></String>
  <SwissKnife Name="ExposureMs"><pVariable Name="E">ExposureTime</pVariable>
    <Constant Name="SCALE">1000</Constant><Expression Name="MS">E / SCALE</Expression>
    <Formula>ROUND(MS, 2) + (E &gt;= 1000 ? 0.001 : 0)</Formula></SwissKnife>
  <IntSwissKnife Name="Packets"><pVariable Name="D">OffsetX</pVariable>
    <Formula>(D / 5) + ((D % 5) ? 1 : 0) + (0x10 &lt;&lt; 1) + (3 = 3) + (2 &lt;&gt; 2)</Formula></IntSwissKnife>
  <Float Name="FrameRate"><pValue>FrameRateConverter</pValue></Float>
  <Converter Name="FrameRateConverter"><pVariable Name="K">Million</pVariable>
    <FormulaTo>K / FROM</FormulaTo><FormulaFrom>K / TO</FormulaFrom><pValue>Period</pValue>
    <Slope>Decreasing</Slope></Converter>
  <Integer Name="Million"><Value>1000000</Value></Integer>
  <Integer Name="Period"><pValue>PeriodReg</pValue><Min>1000</Min><Max>10000000</Max></Integer>
  <IntReg Name="PeriodReg"><Address>0x114</Address><Length>4</Length><AccessMode>RW</AccessMode>
    <pPort>Device</pPort><Endianess>BigEndian</Endianess></IntReg>
  <Integer Name="GainDb10"><pValue>GainConverter</pValue></Integer>
  <IntConverter Name="GainConverter"><FormulaTo>FROM * 3 / 10</FormulaTo><FormulaFrom>TO * 10 / 3</FormulaFrom>
    <pValue>GainRaw</pValue></IntConverter>
  <Integer Name="GainRaw"><Value>7</Value><Min>0</Min><Max>30</Max></Integer>
  <Integer Name="Hidden"><Value>5</Value><pIsAvailable>Locked</pIsAvailable></Integer>
  <Register Name="RawBlock"><Address>0x500</Address><Length>8</Length><AccessMode>RO</AccessMode><pPort>Device</pPort></Register>
  <Integer Name="UsesRaw"><pValue>RawBlock</pValue></Integer>
  <Integer Name="LoopA"><pValue>LoopB</pValue></Integer>
  <Integer Name="LoopB"><pValue>LoopA</pValue></Integer>
  <Port Name="Device"/>
</RegisterDescription>`;

/** A memory-backed port (64 KiB) counting accesses; 4-byte READREG/WRITEREG are big-endian. */
class MemoryPort implements RegisterPort {
  mem = new Uint8Array(0x10000);
  reads = 0;
  writes: [number, number][] = [];
  readMemory(address: number, length: number): Promise<Uint8Array> {
    this.reads++;
    return Promise.resolve(this.mem.slice(address, address + length));
  }
  writeMemory(address: number, data: Uint8Array): Promise<void> {
    this.mem.set(data, address);
    this.writes.push([address, data.length]);
    return Promise.resolve();
  }
  readRegister(address: number): Promise<number> {
    this.reads++;
    return Promise.resolve(new DataView(this.mem.buffer).getUint32(address));
  }
  writeRegister(address: number, value: number): Promise<void> {
    new DataView(this.mem.buffer).setUint32(address, value);
    this.writes.push([address, 4]);
    return Promise.resolve();
  }
  u32(address: number, value?: number): number {
    const dv = new DataView(this.mem.buffer);
    if (value !== undefined) dv.setUint32(address, value);
    return dv.getUint32(address);
  }
}

function setup(): { port: MemoryPort; map: NodeMap } {
  const port = new MemoryPort();
  port.u32(0x100, 640);
  port.u32(0x104, 0x01080001);
  port.u32(0x1f0, 0x12345678);
  port.u32(0x400, 0x00000077);
  port.u32(0x114, 40000);
  new DataView(port.mem.buffer).setFloat64(0x300, 5000, true);
  new DataView(port.mem.buffer).setFloat32(0x308, 36.25);
  port.mem.set([0x34, 0x12], 0x210); // PerChannel[1] little-endian 0x1234
  port.mem.set(new TextEncoder().encode("cam-7\0junk"), 0x400);
  return { port, map: NodeMap.parse(FIXTURE, port) };
}

Deno.test("genicam: Integer over IntReg with Min, pMax (IntSwissKnife), Inc, lock", async () => {
  const { port, map } = setup();
  assert.equal(await map.get("Width"), 640);
  assert.deepEqual(await map.range("Width"), { min: 16, max: 1000, inc: 8 });
  await map.set("Width", "512");
  assert.equal(port.u32(0x100), 512);
  await assert.rejects(map.set("Width", 1008), /Width: 1008 is out of range 16..1000/);
  await assert.rejects(map.set("Width", 20), /Width: 20 is not 16 \+ a multiple of 8/);
  await assert.rejects(map.set("Width", "wide"), /"wide" is not a number/);
  await map.set("Locked", 1);
  await assert.rejects(map.set("Width", 64), /feature Width is not writable now/);
  assert.equal(map.schemaVersion, "1.1.0");
});

Deno.test("genicam: indexed values, pIndex register offsets and pAddress", async () => {
  const { port, map } = setup();
  assert.equal(await map.get("IndexedGain"), 24, "pValueIndexed Index=1 → OffsetX");
  await map.set("Selector", 0);
  assert.equal(await map.get("IndexedGain"), 10);
  await map.set("Selector", 3);
  assert.equal(await map.get("IndexedGain"), 99, "ValueDefault");
  await map.set("Selector", 1);
  assert.equal(await map.get("PerChannel"), 0x1234, "0x200 + 1 × 0x10, little-endian 2 bytes");
  port.u32(0x400, 0xcafe0001);
  assert.equal(await map.get("Indirect"), 0xcafe0001, "0x3FC + 0x4");
  await assert.rejects(map.set("Indirect", 1), /Indirect is a IntReg node, not a feature/);
});

Deno.test("genicam: Float over FloatReg (8-byte LE, 4-byte BE), units, NoCache vs cached", async () => {
  const { port, map } = setup();
  assert.equal(await map.get("ExposureTime"), 5000);
  assert.equal(map.unit("ExposureTime"), "us");
  await map.set("ExposureTime", 2500.5);
  assert.equal(new DataView(port.mem.buffer).getFloat64(0x300, true), 2500.5);
  assert.equal(await map.get("Temperature"), 36.25);
  new DataView(port.mem.buffer).setFloat32(0x308, 40.5);
  assert.equal(await map.get("Temperature"), 40.5, "NoCache: read again");
  const before = port.reads;
  await map.get("Width");
  await map.get("Width");
  assert.equal(port.reads, before + 1, "cached register read once");
  port.u32(0x100, 800);
  assert.equal(await map.get("Width"), 640, "served from the cache");
  map.invalidate();
  assert.equal(await map.get("Width"), 800);
});

Deno.test("genicam: Enumeration entries, pIsImplemented and pIsAvailable", async () => {
  const { port, map } = setup();
  assert.equal(await map.get("PixelFormat"), "Mono8");
  assert.deepEqual([...(await map.enumEntries("PixelFormat")).keys()], [
    "Mono8",
    "Mono16",
    "Mono10",
  ]);
  await map.set("PixelFormat", "Mono16");
  assert.equal(port.u32(0x104), 0x01100007);
  await assert.rejects(map.set("PixelFormat", "Mono12Packed"), /has no entry "Mono12Packed"/);
  await assert.rejects(map.set("PixelFormat", "Mono10"), /entry Mono10 is not available now/);
  port.u32(0x104, 42);
  map.invalidate();
  await assert.rejects(map.get("PixelFormat"), /reads 42, which matches no entry/);
});

Deno.test("genicam: Boolean (OnValue/OffValue), MaskedIntReg bit numbering and sign, StructEntry", async () => {
  const { port, map } = setup();
  assert.equal(await map.get("ReverseX"), false);
  await map.set("ReverseX", true);
  assert.equal(port.u32(0x108), 0x2, "BigEndian bit 30 = value bit 1");
  assert.equal(await map.get("Odd"), false);
  await map.set("Odd", "true");
  assert.equal(await map.getNumber("OddValue"), 321);
  await assert.rejects(map.set("Odd", "maybe"), /not a boolean/);
  port.u32(0x10c, 0xff0);
  assert.equal(await map.get("SignedField"), -1, "LE bits 4..11 = 0xff signed");
  await map.setNumber("SignedField", -2);
  assert.equal(port.u32(0x10c), 0xfe0);
  await assert.rejects(map.setNumber("SignedField", 200), /does not fit its 8-bit field/);
  // The digest's capture of the aravis StructReg at 0x1F0 = 0x12345678.
  assert.equal(await map.get("StatusLow"), 22136);
  assert.equal(await map.get("StatusHigh"), 4660);
  assert.equal(await map.get("StatusBit15"), 0);
  await map.setNumber("StatusHigh", 0xabcd);
  assert.equal(port.u32(0x1f0), 0xabcd5678, "read-modify-write keeps the other field");
});

Deno.test("genicam: Command, String over StringReg and String with Value", async () => {
  const { port, map } = setup();
  await map.execute("AcquisitionStart");
  assert.equal(port.u32(0x110), 1);
  assert.equal(await map.get("DeviceUserID"), "cam-7");
  await map.set("DeviceUserID", "beamline");
  assert.equal(await map.get("DeviceUserID"), "beamline");
  await assert.rejects(map.set("DeviceUserID", "x".repeat(17)), /17 bytes exceed its 16/);
  assert.equal(await map.get("Firmware"), "fw-1.2");
});

Deno.test("genicam: SwissKnife, IntSwissKnife, Converter and IntConverter", async () => {
  const { port, map } = setup();
  assert.equal(await map.get("ExposureMs"), 5.001);
  assert.equal(await map.get("Packets"), 5 + 0 + 32 + 1 + 0, "24/5 → 4 (+1 for the rest)");
  assert.equal(await map.get("FrameRate"), 25);
  const r = await map.range("FrameRate");
  assert.deepEqual([r.min, r.max], [0.1, 1000], "decreasing converter swaps the range");
  await map.set("FrameRate", 50);
  assert.equal(port.u32(0x114), 20000);
  assert.equal(await map.get("GainDb10"), 23, "7 * 10 / 3 truncated");
  await map.setNumber("GainDb10", 50);
  assert.equal(await map.getNumber("GainRaw"), 15);
  await assert.rejects(
    map.setNumber("Packets", 1),
    /Packets is a IntSwissKnife \(computed, read-only\)/,
  );
});

Deno.test("genicam: unavailable, unsupported, cyclic and missing nodes are clear errors", async () => {
  const { map } = setup();
  await assert.rejects(map.get("Hidden"), /feature Hidden is not available now/);
  await assert.rejects(
    map.get("UsesRaw"),
    (err: Error) =>
      err instanceof GenicamError && /node RawBlock is of type Register/.test(err.message),
  );
  await assert.rejects(map.get("LoopA"), /node LoopA refers to itself/);
  await assert.rejects(map.get("Nope"), /feature Nope does not exist in the description/);
  assert.throws(
    () => NodeMap.parse("<RegisterDescription><Integer Name='x'>", new MemoryPort()),
    /does not parse: element <Integer> of line 1 is not closed/,
  );
  assert.throws(() => NodeMap.parse("<Foo/>", new MemoryPort()), /not <RegisterDescription>/);
  assert.throws(
    () => NodeMap.parse("<a></b>", new MemoryPort()),
    /end tag <\/b> at line 1 does not match <a>/,
  );
});

Deno.test("formula: precedence, associativity, functions and integer mode", () => {
  const f = (s: string, integer = false, vars: Record<string, number> = {}) =>
    parseFormula(s).evaluate((n) => {
      if (!(n in vars)) throw new Error(`no ${n}`);
      return vars[n];
    }, integer);
  assert.equal(f("1 + 2 * 3"), 7);
  assert.equal(f("2 ** 3 ** 2"), 512);
  assert.equal(f("-2 ** 2"), 4, "unary binds tighter than ** as in aravis");
  assert.equal(f("7 / 2"), 3.5);
  assert.equal(f("7 / 2", true), 3);
  assert.equal(f("-7 / 2", true), -3);
  assert.equal(f("1 ? 2 : 0 ? 3 : 4"), 2);
  assert.equal(f("0 ? 2 : 0 ? 3 : 4"), 4);
  assert.equal(f("(A.B = 3) && (C <> 4) || 0", false, { "A.B": 3, C: 5 }), 1);
  assert.equal(f("0xFF00 >> 8 & 0x0F | 0x30 ^ 1"), 0x3f);
  assert.equal(f("0xC0000000 | 1"), 0xc0000001, "bit operations are 64-bit");
  assert.equal(f("~0"), -1);
  assert.equal(
    f("ROUND(2.345, 2) + TRUNC(-1.5) + ABS(-2) + SQRT(16) + LG(100) + CEIL(0.2)"),
    2.35 - 1 + 2 + 4 + 2 + 1,
  );
  assert.ok(Math.abs(f("SIN(PI / 2) + LN(E)") - 2) < 1e-12);
  assert.equal(f("1e3 + .5"), 1000.5);
  assert.deepEqual([...parseFormula("W * H + w").variables], ["W", "H", "w"]);
  assert.throws(() => parseFormula("1 +"), /ends early/);
  assert.throws(() => parseFormula("(1"), /expected "\)"/);
  assert.throws(() => parseFormula("1 $ 2"), /cannot read formula/);
  assert.throws(() => f("1 / 0", true), /division by zero/);
});

Deno.test("description: URL forms of the digest, zip (deflate and stored), fallback to the second URL", async () => {
  assert.deepEqual(parseDescriptionUrl("Local:arv-fake-camera.xml;10000;3e67"), {
    fileName: "arv-fake-camera.xml",
    address: 0x10000,
    length: 0x3e67,
    zipped: false,
  });
  assert.deepEqual(
    parseDescriptionUrl("local:C4_2040_GigE_1.0.0.zip;0x8C400904;0x4D30").address,
    0x8c400904,
  );
  assert.equal(parseDescriptionUrl("Local:///x.xml;10;20").fileName, "x.xml");
  assert.equal(parseDescriptionUrl("Local:M.zip;8001000;395C?SchemaVersion=1.1.0").length, 0x395c);
  assert.equal(parseDescriptionUrl("Local: guide_gige_test.zip; 00010000; 06c5").zipped, true);
  assert.throws(() => parseDescriptionUrl("http://host/genicam.xml"), /scheme http not supported/);
  assert.throws(() => parseDescriptionUrl("Local:x.xml;zz;10"), /address is not hex/);

  const xml = new TextEncoder().encode(FIXTURE);
  for (const options of [{ method: 8 }, { method: 0 }, { method: 8, prefix: 16 }] as const) {
    const got = await unzipFirst(await zipArchive("cam.xml", xml, options));
    assert.equal(got.name, "cam.xml");
    assert.equal(new TextDecoder().decode(got.data), FIXTURE);
  }
  await assert.rejects(unzipFirst(xml), /no end-of-central-directory/);
  const broken = await zipArchive("cam.xml", xml, { mangle: (b) => b.map((v) => v ^ 0x5a) });
  await assert.rejects(unzipFirst(broken), /does not inflate|inflates to/);

  // fetchDescription: first URL empty → second URL, zipped.
  const archive = await zipArchive("cam.xml", xml);
  const memory = new Uint8Array(0x20000);
  memory.set(new TextEncoder().encode(`Local:cam.zip;10000;${archive.length.toString(16)}`), 0x400);
  memory.set(archive, 0x10000);
  const d = await fetchDescription((a, l) => Promise.resolve(memory.slice(a, a + l)));
  assert.equal(d.fileName, "cam.zip");
  assert.equal(d.xml, FIXTURE);
  await assert.rejects(
    fetchDescription(() => Promise.resolve(new Uint8Array(512))),
    /no GenICam description: URL register 0x200 is empty; URL register 0x400 is empty/,
  );
});

Deno.test("xml: entities, CDATA, comments, attributes with either quote", () => {
  const root = parseXml(
    `<?xml version="1.0"?><!DOCTYPE x><a x='1' y="&lt;2&gt;"><!-- c --><b>&amp;&#65;&#x42;<![CDATA[<raw>]]></b><c/></a>`,
  );
  assert.deepEqual(root.attributes, { x: "1", y: "<2>" });
  assert.equal(root.children[0].text, "&AB<raw>");
  assert.equal(root.children[1].name, "c");
  assert.throws(() => parseXml(`<a>&bogus;</a>`), /unknown entity &bogus;/);
  assert.throws(() => parseXml(`<a x="1" x="2"/>`), /duplicate attribute x/);
  assert.throws(() => parseXml(`<a/><b/>`), /second root/);
  assert.throws(() => parseXml(``), /no root element/);
});
