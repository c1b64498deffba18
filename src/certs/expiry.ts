/** Turns a certificate's validity window and a clock into a status. Pure. */

export type CertStatus = 'ok' | 'expiring' | 'expired' | 'not-yet-valid';

export const DAY_MS = 86_400_000;

export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

export interface Expiry {
  status: CertStatus;
  /** Whole days until notAfter, rounded down; negative once expired. */
  daysLeft: number;
}

/**
 * A certificate is valid from notBefore through notAfter inclusive (RFC 5280 4.1.2.5).
 * "expiring" means valid but with at most `warnDays` left.
 */
export function expiryOf(notBefore: Date, notAfter: Date, now: Date, warnDays: number): Expiry {
  const left = notAfter.getTime() - now.getTime();
  const daysLeft = Math.floor(left / DAY_MS);
  if (now.getTime() < notBefore.getTime()) return { status: 'not-yet-valid', daysLeft };
  if (left < 0) return { status: 'expired', daysLeft };
  if (left <= warnDays * DAY_MS) return { status: 'expiring', daysLeft };
  return { status: 'ok', daysLeft };
}

/** Worst first, for sorting and for the exit code. */
export const STATUS_SEVERITY: Record<CertStatus, number> = { ok: 0, expiring: 1, expired: 2, 'not-yet-valid': 2 };
