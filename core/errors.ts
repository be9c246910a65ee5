/**
 * Turning anything thrown into text for logs, error events and PVs.
 *
 * @module
 */

/** The message of an unknown thrown value: `Error.message`, else the value as a string. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
