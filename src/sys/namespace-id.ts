/**
 * The kernel's unique, never-reused id of a mount namespace, and what can be done with it.
 *
 * A mount namespace's inode number (the N in `mnt:[N]`) is handed to the next new namespace as
 * soon as the old one is freed, so it names "whatever namespace has that number now". The
 * 64-bit namespace id is taken from a counter that only grows, so it names one namespace for
 * the life of the system. Verified on 6.18 (see docs/design/namespace-identity.md):
 *
 * - NS_GET_MNTNS_ID (and the generic NS_GET_ID) on an nsfs fd opened for reading give the id;
 *   an O_PATH fd gives EBADF, kernels without them ENOTTY, another namespace type EINVAL.
 * - open_by_handle_at(FD_NSFS_ROOT, {id, CLONE_NEWNS, inode}) opens a namespace by its id while
 *   it lives, and fails with ESTALE once it died; 6.18 wants all three fields (an id alone is
 *   ESTALE even for a live namespace).
 * - listmount() with the id in mnt_id_req.mnt_ns_id answers ENOENT once the namespace died,
 *   without opening anything: the cheapest liveness check.
 * - NS_MNT_GET_NEXT / NS_MNT_GET_PREV walk every mount namespace of the system in id order.
 *
 * None of these touches a filesystem inside a namespace, so they never block on one; the main
 * thread may call them.
 */
import koffi from 'koffi';
import { E, NsviewError } from './errors.js';
import { CLONE, O, close, cpath } from './libc.js';
import { FS_MAGIC, fsMagicOf } from './statfs.js';

const lib = koffi.load('libc.so.6');

const c_ioctl_ptr = lib.func('int ioctl(int, unsigned long, void *)');
const c_open = lib.func('int open(void *, int, uint)');
const c_fstat_ino = lib.func('int statx(int, void *, int, unsigned int, void *)');
const c_open_by_handle_at = lib.func('int open_by_handle_at(int, void *, int)');
// listmount(2) has no glibc wrapper in bookworm; see libc.ts on fixed prototypes for syscall().
const sys_listmount = lib.func('syscall', 'long', ['long', 'void *', 'void *', 'size_t', 'uint']);

const SYS_listmount = 458;

/** ioctl numbers of include/uapi/linux/nsfs.h (NSIO 0xb7), as encoded on x86_64 and aarch64. */
export const NSFS_IOCTL = {
  /** _IOR(NSIO, 5, __u64): the id of a mount namespace (EINVAL for other namespace types). */
  GET_MNTNS_ID: 0x8008b705,
  /**
   * _IO(NSIO, 5): the same request as first published, without its argument size; 6.18 answers
   * it with ENOTTY, kernels from before the number was corrected may know only this one.
   */
  GET_MNTNS_ID_LEGACY: 0xb705,
  /** _IOR(NSIO, 13, __u64): the id of a namespace of any type (6.18+). */
  GET_ID: 0x8008b70d,
  /** _IOR(NSIO, 10, struct mnt_ns_info): id and number of mounts. */
  MNT_GET_INFO: 0x8010b70a,
  /** _IOR(NSIO, 11 / 12, struct mnt_ns_info): an fd on the next / previous mount namespace. */
  MNT_GET_NEXT: 0x8010b70b,
  MNT_GET_PREV: 0x8010b70c,
} as const;

/** fcntl.h: the root of the nsfs filesystem as the mount fd of open_by_handle_at. */
const FD_NSFS_ROOT = -10003;
/** exportfs.h: 64-bit namespace id, 32-bit namespace type, 32-bit inode number. */
const FILEID_NSFS = 0xf1;
/** listmount's mnt_id for "from the namespace's root". */
const LSMT_ROOT = 0xffffffffffffffffn;
/** MNT_ID_REQ_SIZE_VER1: the first mnt_id_req that carries mnt_ns_id. */
const MNT_ID_REQ_SIZE_VER1 = 32;

/** The identity of a mount namespace: its inode number now, and its never-reused id. */
export interface MountNamespaceIdentity {
  id: bigint;
  inode: number;
}

function fail(what: string): never {
  const errno = koffi.errno();
  if (errno === E.ENOTTY) throw new NsviewError(E.ENOTTY, `${what}: this kernel has no mount namespace ids`);
  if (errno === E.EBADF) throw new NsviewError(E.EBADF, `${what}: needs an nsfs fd opened for reading (not O_PATH)`);
  if (errno === E.EINVAL) throw new NsviewError(E.EINVAL, `${what}: not a mount namespace`);
  throw new NsviewError(errno, what);
}

const idBuf = Buffer.alloc(8);

/**
 * The unique id of the mount namespace `nsFd` refers to. `nsFd` must be an nsfs fd opened for
 * reading (O_RDONLY: /proc/PID/ns/mnt, a task's ns link, a pin, a handle opened by id).
 * Throws ENOTTY on kernels without namespace ids (the caller falls back), EBADF for an O_PATH
 * fd, EINVAL for a namespace of another type.
 */
export function mountNamespaceId(nsFd: number): bigint {
  idBuf.fill(0);
  if (c_ioctl_ptr(nsFd, NSFS_IOCTL.GET_MNTNS_ID, idBuf) < 0) {
    if (koffi.errno() !== E.ENOTTY || c_ioctl_ptr(nsFd, NSFS_IOCTL.GET_MNTNS_ID_LEGACY, idBuf) < 0)
      fail('NS_GET_MNTNS_ID');
  }
  return idBuf.readBigUInt64LE(0);
}

// struct mnt_ns_info { __u32 size; __u32 nr_mounts; __u64 mnt_ns_id; }
const MNT_NS_INFO_SIZE = 16;
const infoBuf = Buffer.alloc(MNT_NS_INFO_SIZE);

/** Id and number of mounts (without the root mount) of the mount namespace `nsFd`. */
export function mountNamespaceInfo(nsFd: number): { id: bigint; mounts: number } {
  infoBuf.fill(0);
  infoBuf.writeUInt32LE(MNT_NS_INFO_SIZE, 0);
  if (c_ioctl_ptr(nsFd, NSFS_IOCTL.MNT_GET_INFO, infoBuf) < 0) fail('NS_MNT_GET_INFO');
  return { id: infoBuf.readBigUInt64LE(8), mounts: infoBuf.readUInt32LE(4) };
}

const sxBuf = Buffer.alloc(256);
const EMPTY = cpath('');
const AT_EMPTY_PATH = 0x1000;
const STATX_INO = 0x100;

function inodeOf(fd: number): number {
  if (c_fstat_ino(fd, EMPTY, AT_EMPTY_PATH, STATX_INO, sxBuf) < 0) throw new NsviewError(koffi.errno(), 'statx');
  return Number(sxBuf.readBigUInt64LE(32));
}

/**
 * Identity of the mount namespace a host path names: a /proc ns link (`/proc/PID/ns/mnt`,
 * `/proc/PID/task/TID/ns/mnt`), a /proc fd link or an nsfs bind mount. The path is opened O_PATH
 * first and must be nsfs before it is opened for reading through /proc/self/fd: an fd number or a
 * pin path may have been reused for a FIFO or a device, and opening those could block. The
 * namespace is held only for the duration of the call. ESTALE if the path is not an nsfs file.
 */
export function mountNamespaceIdentityAt(path: string | Buffer): MountNamespaceIdentity {
  const pathFd = c_open(cpath(path), O.PATH | O.CLOEXEC, 0);
  if (pathFd < 0) throw new NsviewError(koffi.errno(), `open ${String(path)}`);
  let fd = -1;
  try {
    if (fsMagicOf(pathFd) !== FS_MAGIC.NSFS) throw new NsviewError(E.ESTALE, `${String(path)} is not a namespace file`);
    fd = c_open(cpath(`/proc/self/fd/${pathFd}`), O.RDONLY | O.CLOEXEC | O.NOCTTY | O.NONBLOCK, 0);
    if (fd < 0) throw new NsviewError(koffi.errno(), `reopen ${String(path)}`);
    return { id: mountNamespaceId(fd), inode: inodeOf(fd) };
  } finally {
    if (fd >= 0) close(fd);
    close(pathFd);
  }
}

/** Identity of the mount namespace an open nsfs fd (opened for reading) refers to. */
export function mountNamespaceIdentityOf(nsFd: number): MountNamespaceIdentity {
  return { id: mountNamespaceId(nsFd), inode: inodeOf(nsFd) };
}

// struct file_handle { unsigned int handle_bytes; int handle_type; } + struct nsfs_file_handle
// { __u64 ns_id; __u32 ns_type; __u32 ns_inum; }
const handleBuf = Buffer.alloc(8 + 16);

/**
 * Open the mount namespace with this id (and this inode number) again: an nsfs fd opened for
 * reading, usable for setns and the ioctls above. ESTALE once that namespace died, whatever
 * namespace has the number now. Takes a reference on the namespace while the fd is open; close
 * it soon. Throws EBADF or EINVAL on kernels without nsfs file handles (before 6.18).
 */
export function openMountNamespaceById(ns: MountNamespaceIdentity): number {
  handleBuf.writeUInt32LE(16, 0);
  handleBuf.writeInt32LE(FILEID_NSFS, 4);
  handleBuf.writeBigUInt64LE(ns.id, 8);
  handleBuf.writeUInt32LE(CLONE.NEWNS, 16);
  handleBuf.writeUInt32LE(ns.inode, 20);
  const fd = c_open_by_handle_at(FD_NSFS_ROOT, handleBuf, O.RDONLY | O.CLOEXEC);
  if (fd < 0) throw new NsviewError(koffi.errno(), `open mount namespace ${ns.id}`);
  return fd;
}

// struct mnt_id_req { __u32 size; __u32 spare; __u64 mnt_id; __u64 param; __u64 mnt_ns_id; }
const reqBuf = Buffer.alloc(MNT_ID_REQ_SIZE_VER1);
const oneId = Buffer.alloc(8);

/**
 * Whether the mount namespace with this id still exists, asked with listmount(2) for one mount
 * of it: no fd is opened and no reference is kept. An EPERM answer means the kernel found the
 * namespace (the permission check comes after the lookup), so it counts as alive. Throws ENOSYS
 * or EINVAL/E2BIG on kernels whose listmount has no namespace id (the caller falls back).
 */
export function isMountNamespaceAlive(id: bigint): boolean {
  reqBuf.fill(0);
  reqBuf.writeUInt32LE(MNT_ID_REQ_SIZE_VER1, 0);
  reqBuf.writeBigUInt64LE(LSMT_ROOT, 8);
  reqBuf.writeBigUInt64LE(id, 24);
  const n = Number(sys_listmount(SYS_listmount, reqBuf, oneId, 1, 0));
  if (n >= 0) return true;
  const errno = koffi.errno();
  if (errno === E.ENOENT) return false;
  if (errno === E.EPERM) return true;
  throw new NsviewError(errno, `listmount of mount namespace ${id}`);
}

/** What the running kernel offers; probed once on our own namespace. */
export interface NamespaceIdSupport {
  /** NS_GET_MNTNS_ID works: namespaces have unique ids. */
  ids: boolean;
  /** open_by_handle_at(FD_NSFS_ROOT) reopens a namespace by id (6.18+). */
  handles: boolean;
  /** listmount() answers by namespace id (isMountNamespaceAlive works). */
  listmountById: boolean;
  /** NS_MNT_GET_NEXT walks every mount namespace (forEachMountNamespace works). */
  walk: boolean;
}

let support: NamespaceIdSupport | undefined;

export function namespaceIdSupport(): NamespaceIdSupport {
  if (support) return support;
  const s: NamespaceIdSupport = { ids: false, handles: false, listmountById: false, walk: false };
  const fd = c_open(cpath('/proc/self/ns/mnt'), O.RDONLY | O.CLOEXEC, 0);
  if (fd >= 0) {
    try {
      const own = mountNamespaceIdentityOf(fd);
      s.ids = true;
      try {
        close(openMountNamespaceById(own));
        s.handles = true;
      } catch {
        // no nsfs file handles
      }
      try {
        s.listmountById = isMountNamespaceAlive(own.id);
      } catch {
        // listmount without mnt_ns_id
      }
      infoBuf.fill(0);
      infoBuf.writeUInt32LE(MNT_NS_INFO_SIZE, 0);
      for (const req of [NSFS_IOCTL.MNT_GET_NEXT, NSFS_IOCTL.MNT_GET_PREV]) {
        const other = c_ioctl_ptr(fd, req, infoBuf);
        if (other >= 0) close(other);
        // ENOENT: there is no namespace after (or before) ours, but the ioctl exists.
        if (other >= 0 || koffi.errno() === E.ENOENT) s.walk = true;
      }
    } catch {
      // no ids at all
    } finally {
      close(fd);
    }
  }
  support = s;
  return s;
}

/** A mount namespace met by forEachMountNamespace; `fd` is valid only during the visit. */
export interface VisitedNamespace extends MountNamespaceIdentity {
  /** Mounts in it, not counting its root mount. */
  mounts: number;
  fd: number;
}

/**
 * Visit every mount namespace of the system in id order, without reading procfs: from our own
 * namespace backwards, then forwards (NS_MNT_GET_PREV / NEXT; each step opens the neighbour
 * and closes the previous fd, so at most two are open). `visit` returning true stops the walk.
 * Each namespace is held only while it is visited. Needs CAP_SYS_ADMIN; namespaces created during
 * the walk may or may not be seen, like processes in a /proc scan.
 */
export function forEachMountNamespace(visit: (ns: VisitedNamespace) => boolean | void): void {
  const own = c_open(cpath('/proc/self/ns/mnt'), O.RDONLY | O.CLOEXEC, 0);
  if (own < 0) throw new NsviewError(koffi.errno(), 'open /proc/self/ns/mnt');
  try {
    const first = mountNamespaceInfo(own);
    if (visit({ id: first.id, inode: inodeOf(own), mounts: first.mounts, fd: own })) return;
    for (const req of [NSFS_IOCTL.MNT_GET_PREV, NSFS_IOCTL.MNT_GET_NEXT]) {
      let cur = -1;
      try {
        for (;;) {
          infoBuf.fill(0);
          infoBuf.writeUInt32LE(MNT_NS_INFO_SIZE, 0);
          const next = c_ioctl_ptr(cur < 0 ? own : cur, req, infoBuf);
          if (next < 0) {
            const errno = koffi.errno();
            if (errno === E.ENOENT) break;
            throw new NsviewError(errno, 'NS_MNT_GET_NEXT/PREV');
          }
          if (cur >= 0) close(cur);
          cur = next;
          const ns = { id: infoBuf.readBigUInt64LE(8), inode: inodeOf(cur), mounts: infoBuf.readUInt32LE(4), fd: cur };
          if (visit(ns)) return;
        }
      } finally {
        if (cur >= 0) close(cur);
      }
    }
  } finally {
    close(own);
  }
}
