/**
 * Device numbers. statx gives a device's major and minor apart; each consumer packs them its own
 * way, and the three packings differ: keep them side by side so none is written twice.
 */

/**
 * The kernel's internal dev_t (MKDEV: major << 20 | minor). nsview's one number per filesystem,
 * for comparing devices and keying by them; never shown to anyone.
 */
export function kernelDev(major: number, minor: number): number {
  return major * 0x100000 + minor;
}

/** The kernel's new_encode_dev(): the 32-bit form fuse_attr.rdev carries to the kernel. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/** glibc's makedev(): how st_dev of stat(2) (and so Node's stat().dev) packs major:minor. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}
