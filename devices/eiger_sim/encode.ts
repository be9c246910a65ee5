/**
 * Encodes simulated stream messages as stream v2 CBOR (bslz4-compressed images), and damages the
 * compressed data of images flagged `corrupt` (fault injection).
 *
 * @module
 */

import {
  encodeStreamMessage,
  encodeStreamMessageParts,
  type StreamMessageInit,
} from "../eiger/stream2.ts";
import type { SimMessage } from "./detector.ts";

/**
 * Makes the first bslz4 block of the first channel undecodable by setting its compressed size to
 * a value far beyond the payload. Returns false when no bslz4 header was found.
 */
export function corruptFirstBlock(bytes: Uint8Array, totalSize: number): boolean {
  // Payload header: u64 BE total size, u32 BE block size 8192, then u32 BE csize of block 0.
  const header = new Uint8Array(12);
  const view = new DataView(header.buffer);
  view.setBigUint64(0, BigInt(totalSize));
  view.setUint32(8, 8192);
  outer: for (let i = 0; i + 16 <= bytes.length; i++) {
    for (let j = 0; j < 12; j++) if (bytes[i + j] !== header[j]) continue outer;
    new DataView(bytes.buffer, bytes.byteOffset + i + 12, 4).setUint32(0, 0x7ffffff0);
    return true;
  }
  return false;
}

/** Encodes one simulated message as a stream v2 frame. */
export function encodeSimMessage(msg: SimMessage): Uint8Array {
  const bytes = encodeStreamMessage(streamMessageOf(msg));
  if (msg.type === "image" && msg.corrupt) {
    corruptFirstBlock(bytes, Object.values(msg.data)[0].byteLength);
  }
  return bytes;
}

/**
 * Encodes one simulated message as a stream v2 frame in pieces to send one after the other: the
 * pre-compressed image payloads are referenced, not copied (a corrupted image is one copy).
 */
export function encodeSimMessageParts(msg: SimMessage): Uint8Array[] {
  if (msg.type === "image" && msg.corrupt) return [encodeSimMessage(msg)];
  return encodeStreamMessageParts(streamMessageOf(msg));
}

function streamMessageOf(msg: SimMessage): StreamMessageInit {
  switch (msg.type) {
    case "start":
      return {
        type: "start",
        seriesId: msg.seriesId,
        seriesUniqueId: msg.uniqueId,
        armDate: msg.armDate.toISOString(),
        beamCenterX: msg.width / 2,
        beamCenterY: msg.height / 2,
        channels: msg.channels,
        countTime: msg.countTime,
        frameTime: msg.frameTime,
        countrateCorrectionEnabled: false,
        detectorDescription: "Dectris EIGER2 Si 500K (simulated)",
        detectorSerialNumber: "E-01-0000-SIM",
        detectorTranslation: [0, 0, 0.1],
        flatfieldEnabled: false,
        imageDtype: msg.dtype,
        imageSizeX: msg.width,
        imageSizeY: msg.height,
        incidentEnergy: msg.incidentEnergy,
        incidentWavelength: 12398.42 / msg.incidentEnergy,
        numberOfImages: msg.numberOfImages,
        pixelMaskEnabled: false,
        pixelSizeX: 7.5e-5,
        pixelSizeY: 7.5e-5,
        saturationValue: msg.saturationValue,
        sensorMaterial: "Si",
        sensorThickness: 4.5e-4,
        thresholdEnergy: msg.thresholdEnergy,
        virtualPixelInterpolationEnabled: false,
      };
    case "image":
      return {
        type: "image",
        seriesId: msg.seriesId,
        seriesUniqueId: msg.uniqueId,
        imageId: msg.imageId,
        realTime: msg.realTime,
        seriesDate: msg.seriesDate.toISOString(),
        startTime: msg.startTime,
        stopTime: msg.stopTime,
        data: new Map(
          Object.entries(msg.data).map(([name, pixels]) => [
            name,
            {
              dims: [msg.height, msg.width],
              data: pixels,
              compression: "bslz4" as const,
              payload: msg.payloads?.[name],
            },
          ]),
        ),
      };
    case "end":
      return { type: "end", seriesId: msg.seriesId, seriesUniqueId: msg.uniqueId };
  }
}
