/**
 * An in-memory {@link CaServer} for PV-layer tests: records every post in order and lets tests
 * write like a client (handler semantics as documented in ca/pv.ts).
 *
 * @module
 */

import type {
  CaServer,
  NativeValue,
  PostOptions,
  PvDefinition,
  PvHandle,
  PvMetadata,
  PvValue,
} from "../../ca/pv.ts";
import { OWNER_POSTS } from "../../ca/pv.ts";

/** One recorded post. */
export interface PostRecord {
  name: string;
  value: PvValue;
  options?: PostOptions;
}

function toNative(def: PvDefinition, value: PvValue): NativeValue {
  if (def.type === "string") {
    return (Array.isArray(value) ? value : [value]).map(String);
  }
  const arr = typeof value === "number" || typeof value === "string"
    ? [Number(value)]
    : Array.from(value as ArrayLike<number>, Number);
  return Float64Array.from(arr);
}

/** The fake server. */
export class FakeCaServer implements CaServer {
  readonly tcpPort = 0;
  readonly udpPort = 0;
  readonly posts: PostRecord[] = [];
  readonly #pvs = new Map<string, { def: PvDefinition; value: NativeValue; handle: PvHandle }>();

  add(definition: PvDefinition): PvHandle {
    if (this.#pvs.has(definition.name)) throw new Error(`duplicate ${definition.name}`);
    const entry = {
      def: definition,
      value: toNative(definition, definition.initial ?? (definition.type === "string" ? "" : 0)),
      handle: undefined as unknown as PvHandle,
    };
    entry.handle = {
      name: definition.name,
      definition,
      value: () => entry.value,
      post: (value: PvValue, options?: PostOptions) => {
        const n = toNative(definition, value);
        if (n.length > (definition.maxCount ?? 1)) throw new Error(`too long: ${definition.name}`);
        entry.value = n;
        this.posts.push({ name: definition.name, value, options });
      },
      setMetadata: (_m: PvMetadata) => {},
    };
    this.#pvs.set(definition.name, entry);
    return entry.handle;
  }
  remove(name: string): void {
    this.#pvs.delete(name);
  }
  get(name: string): PvHandle | undefined {
    return this.#pvs.get(name)?.handle;
  }
  names(): string[] {
    return [...this.#pvs.keys()];
  }
  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Writes like a client: runs the handler, then stores its result or the written value (nothing
   * when the handler answers OWNER_POSTS).
   */
  async write(name: string, value: PvValue): Promise<void> {
    const entry = this.#pvs.get(name);
    if (entry === undefined) throw new Error(`no PV ${name}`);
    if (!entry.def.writable) throw new Error(`read-only ${name}`);
    const native = toNative(entry.def, value);
    const result = entry.def.onWrite
      ? await entry.def.onWrite(native, { user: "t", host: "h", address: "127.0.0.1" })
      : undefined;
    if (result === OWNER_POSTS) return;
    entry.handle.post(result !== undefined ? result : native);
  }

  /** Current value as plain numbers or strings. */
  read(name: string): (number | string)[] {
    const v = this.#pvs.get(name)?.value;
    if (v === undefined) throw new Error(`no PV ${name}`);
    return Array.from(v as ArrayLike<number | string>);
  }
}
