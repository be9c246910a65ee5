/**
 * A small non-validating XML parser for GenICam descriptions: elements, attributes, text,
 * comments, processing instructions, CDATA and the predefined and numeric entities. Namespaces
 * are kept as written (prefixes are not resolved). Errors name the line.
 *
 * @module
 */

/** One XML element. */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  /** Concatenated text content directly inside this element (not of its children). */
  text: string;
  /** 1-based line of the start tag. */
  line: number;
}

/** The document is not well-formed. */
export class XmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "XmlError";
  }
}

const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function decodeEntities(s: string, line: () => number): string {
  if (!s.includes("&")) return s;
  return s.replace(/&([^;&\s]{1,10});/g, (_m, name: string) => {
    if (name[0] === "#") {
      const code = name[1] === "x" || name[1] === "X"
        ? parseInt(name.slice(2), 16)
        : parseInt(name.slice(1), 10);
      if (!Number.isFinite(code) || code < 0 || code > 0x10ffff) {
        throw new XmlError(`bad character reference &${name}; at line ${line()}`);
      }
      return String.fromCodePoint(code);
    }
    const v = ENTITIES[name];
    if (v === undefined) throw new XmlError(`unknown entity &${name}; at line ${line()}`);
    return v;
  });
}

const NAME = /[A-Za-z_:][-A-Za-z0-9_:.]*/y;
const ATTR = /\s*([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*("([^"]*)"|'([^']*)')/y;

/** Parses `text` and returns the root element. */
export function parseXml(text: string): XmlElement {
  let pos = 0;
  const lineAt = (p: number) => {
    let n = 1;
    for (let i = 0; i < p && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
    return n;
  };
  const here = () => lineAt(pos);
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  if (text.charCodeAt(0) === 0xfeff) pos = 1;
  while (pos < text.length) {
    const lt = text.indexOf("<", pos);
    const chunk = lt < 0 ? text.slice(pos) : text.slice(pos, lt);
    if (chunk.length > 0) {
      if (stack.length > 0) stack[stack.length - 1].text += decodeEntities(chunk, here);
      else if (chunk.trim() !== "") throw new XmlError(`text outside the root at line ${here()}`);
    }
    if (lt < 0) break;
    pos = lt;
    if (text.startsWith("<!--", pos)) {
      const end = text.indexOf("-->", pos + 4);
      if (end < 0) throw new XmlError(`unterminated comment at line ${here()}`);
      pos = end + 3;
    } else if (text.startsWith("<?", pos)) {
      const end = text.indexOf("?>", pos + 2);
      if (end < 0) throw new XmlError(`unterminated processing instruction at line ${here()}`);
      pos = end + 2;
    } else if (text.startsWith("<![CDATA[", pos)) {
      const end = text.indexOf("]]>", pos + 9);
      if (end < 0) throw new XmlError(`unterminated CDATA at line ${here()}`);
      if (stack.length === 0) throw new XmlError(`CDATA outside the root at line ${here()}`);
      stack[stack.length - 1].text += text.slice(pos + 9, end);
      pos = end + 3;
    } else if (text.startsWith("<!", pos)) {
      // DOCTYPE (no internal subset support needed for GenICam files)
      const end = text.indexOf(">", pos + 2);
      if (end < 0) throw new XmlError(`unterminated declaration at line ${here()}`);
      pos = end + 1;
    } else if (text.startsWith("</", pos)) {
      NAME.lastIndex = pos + 2;
      const m = NAME.exec(text);
      if (m === null) throw new XmlError(`bad end tag at line ${here()}`);
      const close = text.indexOf(">", NAME.lastIndex);
      if (close < 0 || text.slice(NAME.lastIndex, close).trim() !== "") {
        throw new XmlError(`bad end tag </${m[0]} at line ${here()}`);
      }
      const open = stack.pop();
      if (open === undefined || open.name !== m[0]) {
        throw new XmlError(
          `end tag </${m[0]}> at line ${here()} does not match ${
            open ? `<${open.name}> of line ${open.line}` : "any open element"
          }`,
        );
      }
      pos = close + 1;
    } else {
      NAME.lastIndex = pos + 1;
      const m = NAME.exec(text);
      if (m === null) throw new XmlError(`bad start tag at line ${here()}`);
      const el: XmlElement = { name: m[0], attributes: {}, children: [], text: "", line: here() };
      let p = NAME.lastIndex;
      while (true) {
        ATTR.lastIndex = p;
        const a = ATTR.exec(text);
        if (a === null) break;
        if (a[1] in el.attributes) {
          throw new XmlError(`duplicate attribute ${a[1]} at line ${lineAt(p)}`);
        }
        el.attributes[a[1]] = decodeEntities(a[3] ?? a[4], () => lineAt(p));
        p = ATTR.lastIndex;
      }
      while (p < text.length && /\s/.test(text[p])) p++;
      let selfClosing = false;
      if (text.startsWith("/>", p)) {
        selfClosing = true;
        p += 2;
      } else if (text[p] === ">") {
        p += 1;
      } else {
        throw new XmlError(`malformed tag <${el.name}> at line ${el.line}`);
      }
      if (stack.length > 0) stack[stack.length - 1].children.push(el);
      else if (root === undefined) root = el;
      else throw new XmlError(`second root element <${el.name}> at line ${el.line}`);
      if (!selfClosing) stack.push(el);
      pos = p;
    }
  }
  if (stack.length > 0) {
    const open = stack[stack.length - 1];
    throw new XmlError(`element <${open.name}> of line ${open.line} is not closed`);
  }
  if (root === undefined) throw new XmlError("no root element");
  return root;
}
