/** Is `name` one of the NUL-terminated names in `list` (as listxattr returns them)? */
export function hasXattrName(list: Uint8Array, name: Uint8Array): boolean {
  for (let start = 0; start < list.length; ) {
    let end = list.indexOf(0, start);
    if (end < 0) end = list.length;
    if (end - start === name.length && name.every((b, i) => list[start + i] === b)) return true;
    start = end + 1;
  }
  return false;
}
