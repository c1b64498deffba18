/** Quoting for POSIX shells: every value that reaches a remote shell goes through here. */

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Single-quotes a value unless it is made only of characters no shell treats specially. */
export function shq(value: string): string {
  if (value === '') return "''";
  if (SAFE.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** An absolute path of plain characters; anything else is refused rather than quoted. */
export const SAFE_ABS_PATH = /^\/[A-Za-z0-9._/-]*$/;
