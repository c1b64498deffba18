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

/** `rotate --due-within`, beyond ApplyExit (a due run with nothing due exits ApplyExit.done). */
export const RotateExit = {
  /**
   * The run did not start and changed nothing: unattended, a node did not answer, etcd or the API
   * was not healthy, an earlier run is unfinished, the lock is held, or an etcd recovery was not
   * allowed; with several clusters, also a cluster skipped for its management cluster. Distinct
   * from every other code, so a timer can alert on it.
   */
  refused: 4,
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

/** `backups`. */
export const BackupsExit = {
  done: 0,
  /** Some node could not be read (or, with --prune, pruned); the others are listed. */
  notRead: 3,
} as const;

/** `trust`. */
export const TrustExit = {
  /** Every host key read is in known_hosts now (or the user declined to record the new ones). */
  done: 0,
  /** A changed or revoked key (never recorded), or a host whose key could not be read: ExitCode.unavailable. */
  refused: 69,
  stopped: 130,
} as const;

/** Flag defaults, as --help shows them. The gate timeouts' defaults are apply/gates.ts's DEFAULT_TIMEOUTS. */
export const FlagDefault = {
  warnDays: 30,
  concurrency: 16,
  parallel: 5,
  output: 'table',
  /** --keep-backups (apply, rotate) and backups --keep: runs whose backups stay on each node, and in the state folder. */
  keepBackups: 3,
} as const;

/** What --pod-timeout replaces when not given, in seconds: DEFAULT_TIMEOUTS.podStopMs and podStartMs. */
export const PodTimeoutDefault = {
  stopSeconds: 120,
  startSeconds: 300,
} as const;
