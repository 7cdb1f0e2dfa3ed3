/**
 * The one rule that turns an engine's name (container, pod, namespace) into a single path
 * component of the view. Engines accept names nsview cannot show as-is (containerd labels and
 * Kubernetes annotations are arbitrary strings; Docker and Podman restrict names, but nsview does
 * not rely on that), and a container's creator chooses them: the result must never be `.`, `..`,
 * empty, contain `/` or NUL, or be longer than a name may be.
 *
 * Rule (reversible, so two different names never share a component):
 *   - every byte of the UTF-8 encoding that is `%`, `/`, a control character (0x00-0x1f, 0x7f)
 *     becomes `%XX` (two upper-case hex digits);
 *   - a name that is exactly `.` or `..` has its dots written `%2E`;
 *   - everything else, including non-ASCII UTF-8, is kept byte for byte.
 * Refused (undefined: the container stays reachable by its id only):
 *   - the empty name;
 *   - a string that is not valid Unicode (a lone UTF-16 surrogate has no UTF-8 encoding);
 *   - an encoded result longer than 255 bytes (NAME_MAX).
 */

const NAME_MAX = 255;

function mustEscape(byte: number): boolean {
  return byte === 0x25 /* % */ || byte === 0x2f /* / */ || byte < 0x20 || byte === 0x7f;
}

/** The path component showing `name`, or undefined when it cannot be shown (see the rule above). */
export function encodePathComponent(name: string): string | undefined {
  // A lone surrogate does not survive a UTF-8 round trip (it becomes U+FFFD).
  if (name.length === 0 || Buffer.from(name, 'utf8').toString('utf8') !== name) return undefined;
  if (name === '.') return '%2E';
  if (name === '..') return '%2E%2E';
  let out = '';
  for (const ch of name) {
    const bytes = Buffer.from(ch, 'utf8');
    if (bytes.length === 1 && mustEscape(bytes[0]!)) out += `%${bytes[0]!.toString(16).toUpperCase().padStart(2, '0')}`;
    else out += ch;
  }
  return Buffer.byteLength(out, 'utf8') > NAME_MAX ? undefined : out;
}

/** Inverse of encodePathComponent (for tools and tests); undefined for a malformed escape. */
export function decodePathComponent(component: string): string | undefined {
  const bytes: number[] = [];
  const raw = Buffer.from(component, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== 0x25) {
      bytes.push(raw[i]!);
      continue;
    }
    const hex = raw.subarray(i + 1, i + 3).toString('latin1');
    if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(bytes).toString('utf8');
}
