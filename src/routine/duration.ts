/**
 * `--due-within`'s durations, and the repeatable `--cluster` of `rotate`. Light on purpose:
 * program.ts loads this for --help and flag parsing.
 */
import { UsageError } from '../util/errors.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** As long as --warn-days may be: ten years. */
const MAX_MS = 3650 * DAY_MS;

export interface Duration {
  ms: number;
  /** As the user wrote it (30d, 12h), for messages. */
  text: string;
}

/** `Nd` (days) or `Nh` (hours), at least an hour and at most ten years. */
export function parseDuration(flag: string) {
  return (value: string): Duration => {
    const m = /^(\d{1,6})([dh])$/.exec(value);
    if (!m) throw new UsageError(`${flag} expects a number of days or hours, such as 30d or 12h, got ${JSON.stringify(value)}`);
    const ms = Number(m[1]) * (m[2] === 'd' ? DAY_MS : HOUR_MS);
    if (ms < HOUR_MS || ms > MAX_MS) throw new UsageError(`${flag} must be between 1h and 3650d, got ${value}`);
    return { ms, text: value };
  };
}

/** Whole days a duration covers, rounded up: a kubelet certificate this close is due. */
export function durationDays(d: Duration): number {
  return Math.ceil(d.ms / DAY_MS);
}

/** commander's parser for a flag given once or more: every value, in order. */
export function repeatable(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
