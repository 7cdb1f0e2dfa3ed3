/** Is `name` one of the NUL-terminated names in `list` (as listxattr returns them)? */
export function hasXattrName(list: Uint8Array, name: Uint8Array): boolean {
  for (let start = 0; start < list.length;) {
    let end = list.indexOf(0, start);
    if (end < 0) end = list.length;
    if (end - start === name.length && name.every((b, i) => list[start + i] === b)) return true;
    start = end + 1;
  }
  return false;
}

const TRUSTED_PREFIX = Buffer.from('trusted.');

/** Is `name` in the trusted.* namespace (which the kernel shows only to CAP_SYS_ADMIN)? */
export function isTrustedXattr(name: Uint8Array): boolean {
  return name.length >= TRUSTED_PREFIX.length && TRUSTED_PREFIX.every((b, i) => name[i] === b);
}

/** `list` (NUL-terminated names) without its trusted.* names. */
export function withoutTrustedXattrs(list: Uint8Array): Buffer {
  const kept: Uint8Array[] = [];
  for (let start = 0; start < list.length;) {
    let end = list.indexOf(0, start);
    if (end < 0) end = list.length;
    if (!isTrustedXattr(list.subarray(start, end))) kept.push(list.subarray(start, Math.min(end + 1, list.length)));
    start = end + 1;
  }
  return Buffer.concat(kept);
}
