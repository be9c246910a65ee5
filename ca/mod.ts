/**
 * Channel Access: the entry module other layers import. The server side is
 * {@link startCaServer} returning a {@link CaServer} whose PVs are posted through
 * {@link PvHandle}s; the client side is {@link createCaClient}. The protocol core (`messages.ts`,
 * `dbr*.ts`, `circuit.ts`, ...) stays internal to `ca/`; tests and benchmarks of those parts import
 * them directly.
 *
 * @module
 */

export {
  AlarmStatus,
  type CaServer,
  type ClientInfo,
  type NativeType,
  type NativeValue,
  type NumericArray,
  OWNER_POSTS,
  type PostOptions,
  type PvDefinition,
  type PvHandle,
  type PvMetadata,
  type PvValue,
  Severity,
  type WriteAccessHook,
  type WriteHandler,
  WriteRefusedError,
} from "./pv.ts";
export { type CaServerOptions, startCaServer } from "./server.ts";
export { type PvRecord, PvStore, STATUS_LABELS, type SubscriberSink } from "./store.ts";
export { defaultCodec } from "./codec_dbr.ts";
export { DBE } from "./messages.ts";
export {
  broadcastAddresses,
  CaEnvError,
  isIPv4,
  parseAddressList,
  parseYesNo,
  readServerEnv,
  type UdpDestination,
} from "./env.ts";
export { readServerLimits, type ServerLimits } from "./server_limits.ts";
export {
  type CaChannel,
  type CaClient,
  type CaClientOptions,
  CaRequestError,
  type CaValue,
  type ChannelState,
  createCaClient,
  type SubscribeOptions,
} from "./client.ts";
export { type CaClientEnvConfig, readClientEnv, type SearchDestination } from "./client_env.ts";
export { DBR } from "./dbr.ts";
