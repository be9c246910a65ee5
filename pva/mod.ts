/**
 * pvAccess: server, client and codec (the entry module of `pva/`).
 *
 * @module
 */

export { type PvaServer, type PvaServerOptions, startPvaServer } from "./server.ts";
export {
  type MonitorUpdate,
  PvaClient,
  type PvaClientOptions,
  PvaStatusError,
  searchUdp,
  type Subscription,
} from "./client.ts";
export {
  anyDoubles,
  anyInt,
  anyString,
  type NdArraySource,
  ndArraySource,
  type NdAttribute,
  type NdFrameInfo,
  type NdShape,
  type PvaSource,
  recordSource,
  staticSource,
} from "./source.ts";
export { readPvaServerEnv } from "./env.ts";
export type { ScalarType } from "./pvdata.ts";
export { type PviSignal, pviStructure } from "./pvi.ts";
