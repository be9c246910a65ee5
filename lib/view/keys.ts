/**
 * Key input of the viewer: raw terminal bytes to named keys (sans I/O).
 *
 * @module
 */

/** Keys the viewer reacts to. */
export type ViewKey =
  | "quit"
  | "channel"
  | "scale"
  | "colormap"
  | "left"
  | "right"
  | "contrast+"
  | "contrast-";

/** Parses a chunk of raw-mode input into keys; unknown bytes and sequences are skipped. */
export function parseKeys(bytes: Uint8Array): ViewKey[] {
  const keys: ViewKey[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x1b) {
      // CSI or SS3 cursor keys: ESC [ C / ESC O C (right), ... D (left); skip other sequences
      if (i + 1 < bytes.length && (bytes[i + 1] === 0x5b || bytes[i + 1] === 0x4f)) {
        let j = i + 2;
        while (j < bytes.length && bytes[j] >= 0x20 && bytes[j] <= 0x3f) j++;
        const final = bytes[j];
        if (final === 0x43) keys.push("right");
        else if (final === 0x44) keys.push("left");
        i = j;
      }
      continue;
    }
    switch (b) {
      case 0x71: // q
      case 0x51: // Q
      case 0x03: // Ctrl-C in raw mode
      case 0x04: // Ctrl-D
        keys.push("quit");
        break;
      case 0x63: // c
        keys.push("channel");
        break;
      case 0x6c: // l
        keys.push("scale");
        break;
      case 0x6d: // m
        keys.push("colormap");
        break;
      case 0x2b: // +
      case 0x3d: // = (unshifted +)
        keys.push("contrast+");
        break;
      case 0x2d: // -
        keys.push("contrast-");
        break;
      case 0x68: // h (vi left)
        keys.push("left");
        break;
    }
  }
  return keys;
}
