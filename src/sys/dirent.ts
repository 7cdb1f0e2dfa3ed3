/**
 * struct linux_dirent64, the records getdents64(2) fills a buffer with, back to back:
 * d_ino (u64), d_off (s64, the cookie to seek to for the entries after this one), d_reclen (u16,
 * this record's length), d_type (u8), d_name (NUL-terminated, padded).
 */
export const DIRENT64 = { ino: 0, off: 8, reclen: 16, type: 18, name: 19 } as const;
