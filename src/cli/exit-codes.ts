/**
 * The exit codes of each command beyond util/errors.ts's ExitCode, and the flag defaults, in one
 * light module: the commands return these, and --help prints them (test/unit/help.test.ts holds
 * the two together).
 */

/** `apply`, `rotate` and the guided run. */
export const ApplyExit = {
  done: 0,
  failedRestored: 1,
  failedNotRestored: 2,
  stopped: 130,
} as const;

/** `check`, as check/exit-code.ts computes them; the highest applies. */
export const CheckExit = {
  ok: 0,
  expiring: 1,
  expired: 2,
  notChecked: 3,
} as const;

/** `plan`. */
export const PlanExit = {
  done: 0,
  /** Some node or endpoint could not be read; with --out, no plan is written when a node in scope is among them. */
  notRead: 3,
} as const;

/** Flag defaults, as --help shows them. The gate timeouts' defaults are apply/gates.ts's DEFAULT_TIMEOUTS. */
export const FlagDefault = {
  warnDays: 30,
  concurrency: 16,
  parallel: 5,
  output: 'table',
} as const;

/** What --pod-timeout replaces when not given, in seconds: DEFAULT_TIMEOUTS.podStopMs and podStartMs. */
export const PodTimeoutDefault = {
  stopSeconds: 120,
  startSeconds: 300,
} as const;
