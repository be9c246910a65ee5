/**
 * The typed PV API the rest of the program uses to serve process variables over Channel Access.
 *
 * This module only declares types and small value helpers; `ca/server.ts` implements
 * {@link CaServer}. Values are stored as arrays of the native type (a scalar is an array of one
 * element); {@link PvHandle.post} also accepts plain numbers and strings.
 *
 * @module
 */

/** Native (DBF) field types a PV can have. */
export type NativeType = "string" | "short" | "float" | "enum" | "char" | "long" | "double";

/** Numeric DBF codes of the native types (as sent in CREATE_CHAN replies). */
export const NATIVE_TYPE_CODES: Readonly<Record<NativeType, number>> = {
  string: 0,
  short: 1,
  float: 2,
  enum: 3,
  char: 4,
  long: 5,
  double: 6,
};

/** Any typed array a PV value may be given as (converted to the native type on post). */
export type NumericArray =
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array;

/** The stored form of a value: the typed array of the native type, or strings for STRING. */
export type NativeValue =
  | string[] //                string
  | Int16Array //              short
  | Float32Array //            float
  | Uint16Array //             enum (state index)
  | Uint8Array //              char
  | Int32Array //              long
  | Float64Array; //           double

/** What may be posted: a number, a string, an array of either, or any typed array. */
export type PvValue = number | string | readonly number[] | readonly string[] | NumericArray;

/** Alarm severities (EPICS `alarm.h`). */
export const Severity = { NO_ALARM: 0, MINOR: 1, MAJOR: 2, INVALID: 3 } as const;

/** Alarm status codes used here (EPICS `alarm.h`; 0 = no alarm). */
export const AlarmStatus = {
  NO_ALARM: 0,
  READ: 1,
  WRITE: 2,
  HIHI: 3,
  HIGH: 4,
  LOLO: 5,
  LOW: 6,
  STATE: 7,
  COS: 8,
  COMM: 9,
  TIMEOUT: 10,
  HW_LIMIT: 11,
  CALC: 12,
  SCAN: 13,
  LINK: 14,
  SOFT: 15,
  BAD_SUB: 16,
  UDF: 17,
  DISABLE: 18,
  SIMM: 19,
  READ_ACCESS: 20,
  WRITE_ACCESS: 21,
} as const;

/** Display metadata served in GR/CTRL replies. */
export interface PvMetadata {
  /** Engineering units (at most 7 characters reach CA clients). */
  units?: string;
  /** Display precision (FLOAT/DOUBLE). */
  precision?: number;
  /** Display limits `[lower, upper]`. */
  displayLimits?: readonly [number, number];
  /** Control (drive) limits `[lower, upper]`; writes outside are refused. */
  controlLimits?: readonly [number, number];
  /** Alarm limits `[lolo, hihi]`. */
  alarmLimits?: readonly [number, number];
  /** Warning limits `[low, high]`. */
  warningLimits?: readonly [number, number];
  /** Enum state labels (ENUM only; at most 16, each at most 25 characters). */
  enumLabels?: readonly string[];
  /** Description (`.DESC`), at most 39 characters. */
  description?: string;
  /** Record type name reported by `.RTYP` and DBR_CLASS_NAME (e.g. `ai`, `waveform`). */
  recordType?: string;
}

/** Who is writing: what the client announced and where it connects from. */
export interface ClientInfo {
  /** User name from CLIENT_NAME ("" if none was sent). */
  user: string;
  /** Host name from HOST_NAME ("" if none was sent). */
  host: string;
  /** Peer IP address of the circuit. */
  address: string;
}

/** Thrown by a write handler to refuse a write; the client receives ECA_PUTFAIL. */
export class WriteRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WriteRefusedError";
  }
}

/**
 * Returned by a write handler: the write is accepted, but the server stores and posts nothing —
 * the PV's owner posts the value itself (e.g. a state machine that reacts to the write), so the PV
 * has one writer.
 */
export const OWNER_POSTS: unique symbol = Symbol("OWNER_POSTS");

/**
 * Handles a validated client write (already converted to the native type).
 * Resolve to accept: the server then stores and posts the written value, unless the handler
 * returns a value, which is stored and posted instead, or {@link OWNER_POSTS}, after which the
 * server posts nothing. Throw to refuse (client gets ECA_PUTFAIL; the stored value is unchanged).
 * WRITE_NOTIFY completes only when the handler has settled.
 */
export type WriteHandler = (
  value: NativeValue,
  client: ClientInfo,
) => void | PvValue | typeof OWNER_POSTS | Promise<void | PvValue | typeof OWNER_POSTS>;

/** Definition of one PV. */
export interface PvDefinition extends PvMetadata {
  /** Full PV name (prefix included). */
  name: string;
  /** Native type. */
  type: NativeType;
  /** Capacity in elements (the native count announced to clients); default 1. */
  maxCount?: number;
  /** Initial value; default 0 / "" (scalar), or an empty array for arrays. */
  initial?: PvValue;
  /** Whether clients may write; default false (read-only). */
  writable?: boolean;
  /** Called on every accepted client write (required for a useful writable PV). */
  onWrite?: WriteHandler;
}

/** Options of one post. */
export interface PostOptions {
  /** Timestamp in milliseconds since the Unix epoch (may be fractional); default now. */
  timestamp?: number;
  /** Alarm severity (see {@link Severity}); default NO_ALARM. */
  severity?: number;
  /** Alarm status (see {@link AlarmStatus}); default NO_ALARM. */
  status?: number;
  /**
   * The caller keeps (and may overwrite) the posted array: store a copy, into the PV's own array
   * when the length is unchanged (no allocation per post). Default false: a typed array of the
   * native element type is kept as is.
   */
  copy?: boolean;
  /**
   * The caller hands the array over and will not write to it while it is the PV's value (the
   * pixel ownership rule of `devices/contract.ts`): it is kept as is, also when its element type
   * is narrower than the native one (uint32 pixels on a DOUBLE PV). Without it, only arrays of
   * the native element type are kept by reference.
   */
  keep?: boolean;
  /**
   * With {@link keep}: takes another reference to the handed-over array (the frame's `retain`,
   * see `devices/contract.ts`) and returns the function that gives it back. Readers that keep
   * referring to the value after the next post (a queued pvAccess image message) then borrow the
   * array through it instead of copying it.
   */
  retain?: () => () => void;
}

/** A served PV. */
export interface PvHandle {
  /** The PV's full name. */
  readonly name: string;
  /** Its definition as given. */
  readonly definition: Readonly<PvDefinition>;
  /** Current value in native form. Do not mutate it. */
  value(): NativeValue;
  /**
   * Stores a new value and notifies subscribers (DBE_VALUE|DBE_LOG; DBE_ALARM too when severity or
   * status changed). A typed array of the native element type is kept without copying (unless
   * {@link PostOptions.copy}): the caller must not modify it afterwards. Arrays longer than
   * `maxCount` are refused with an error.
   */
  post(value: PvValue, options?: PostOptions): void;
  /** Replaces display metadata and notifies DBE_PROPERTY subscribers. */
  setMetadata(metadata: PvMetadata): void;
}

/** Decides whether a client may write a PV (called at channel creation; default: allow). */
export type WriteAccessHook = (pvName: string, client: ClientInfo) => boolean;

/** A running Channel Access server. */
export interface CaServer {
  /** TCP port clients connect to (also announced in search replies and beacons). */
  readonly tcpPort: number;
  /** UDP port the server listens on for name searches. */
  readonly udpPort: number;
  /** Adds a PV; throws if the name is taken or the definition is invalid. */
  add(definition: PvDefinition): PvHandle;
  /** Removes a PV; clients holding channels to it receive SERVER_DISCONN. */
  remove(name: string): void;
  /** Looks up a PV by name. */
  get(name: string): PvHandle | undefined;
  /** Names of all served PVs, in the order they were added. */
  names(): string[];
  /** Stops listening, closes all circuits and beacons. */
  close(): Promise<void>;
}
