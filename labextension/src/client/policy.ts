/**
 * Reconnection policy, pure: which failure gets which delay, and which is final.
 *
 * The same rules as the Python client (jupyter_rtstream/client):
 * - nothing listening (refused, or closed before the handshake): quick retries, uniform
 *   0.25-1.0 s, indefinitely. A browser cannot tell a refused TCP connection from a failed
 *   HTTP upgrade, so such failures count as "not listening" for the first 30 s of an outage,
 *   then as overload (full-jitter exponential);
 * - overload (close 1013; 1001/1012 or 1008 with `retry_after`; a dead connection): full
 *   jitter, base 0.5 s, factor 2, cap 30 s, never sooner than `retry_after`;
 * - final: 1008 without `retry_after`, 4401/4403, a close reason that says auth, 1003/1009
 *   (a client bug that a retry would only repeat).
 */

export const QUICK_MIN_S = 0.25;
export const QUICK_MAX_S = 1.0;
export const BACKOFF_BASE_S = 0.5;
export const BACKOFF_FACTOR = 2;
export const BACKOFF_CAP_S = 30;
export const NOT_LISTENING_WINDOW_S = 30;

/** A random number in [0, 1). */
export type Rng = () => number;

/** Uniform 0.25-1.0 s: the retry delay while nothing listens. */
export function quickDelay(rng: Rng): number {
  return QUICK_MIN_S + rng() * (QUICK_MAX_S - QUICK_MIN_S);
}

/** Full jitter: uniform in [0, min(cap, base * factor ** attempt)), attempt from 0. */
export function fullJitterDelay(attempt: number, rng: Rng): number {
  const exponent = Math.max(0, Math.min(attempt, 64));
  return rng() * Math.min(BACKOFF_CAP_S, BACKOFF_BASE_S * BACKOFF_FACTOR ** exponent);
}

/** The JSON close reason the server sends, e.g. `{"reason": "SLOW_CONSUMER", "retry_after": 1}`. */
export interface CloseReason {
  reason: string;
  retryAfter: number | null;
}

export function parseCloseReason(text: string): CloseReason {
  if (text.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed !== null && typeof parsed === 'object') {
        const record = parsed as Record<string, unknown>;
        const reason = typeof record.reason === 'string' ? record.reason : text;
        const retry = record.retry_after;
        const retryAfter =
          typeof retry === 'number' && Number.isFinite(retry) && retry >= 0 ? retry : null;
        return { reason, retryAfter };
      }
    } catch {
      // not JSON after all: the text is the reason
    }
  }
  return { reason: text, retryAfter: null };
}

/** How a failure is treated. */
export type FailureClass =
  | { kind: 'not_listening' }
  | { kind: 'overload'; retryAfter: number | null }
  | { kind: 'final'; reason: string };

const AUTH_REASON = /auth|forbidden|unauthori[sz]ed|permission/i;

/** Classify a close the server (or the network) gave after the connection had opened. */
export function classifyClose(code: number, reasonText: string): FailureClass {
  const { reason, retryAfter } = parseCloseReason(reasonText);
  if (code === 4401 || code === 4403 || AUTH_REASON.test(reason)) {
    return { kind: 'final', reason: reason || `close ${code}` };
  }
  if (code === 1003 || code === 1009) {
    return { kind: 'final', reason: reason || `close ${code}` };
  }
  if (code === 1008) {
    return retryAfter === null
      ? { kind: 'final', reason: reason || 'policy violation (1008)' }
      : { kind: 'overload', retryAfter };
  }
  if (code === 1013) {
    return { kind: 'overload', retryAfter };
  }
  if ((code === 1001 || code === 1012) && retryAfter !== null) {
    return { kind: 'overload', retryAfter };
  }
  // 1006 (killed server, dropped network), 1001/1012 without retry_after, 1000, 1011...:
  // the next attempt finds out whether anything listens.
  return { kind: 'not_listening' };
}

/** Backoff bookkeeping of one outage: reset when a `connection_status` arrives. */
export class Backoff {
  /** Failures since the last `connection_status`: what the status bar shows. */
  attempts = 0;
  /** Exponential-class failures since the last reset: the exponent of the next delay. */
  exponent = 0;
  /** When the current outage began (seconds, the caller's clock); null when connected. */
  outageStart: number | null = null;

  constructor(private readonly rng: Rng) {}

  reset(): void {
    this.attempts = 0;
    this.exponent = 0;
    this.outageStart = null;
  }

  /**
   * The delay (seconds) before the next attempt after a failure of class `failure` at `now`,
   * computed from the counters as they are at this very moment; null when final.
   */
  next(failure: FailureClass, now: number): number | null {
    if (failure.kind === 'final') return null;
    this.outageStart ??= now;
    this.attempts += 1;
    let kind = failure.kind;
    if (kind === 'not_listening' && now - this.outageStart >= NOT_LISTENING_WINDOW_S) {
      kind = 'overload';
    }
    if (kind === 'not_listening') return quickDelay(this.rng);
    const delay = fullJitterDelay(this.exponent, this.rng);
    this.exponent += 1;
    const retryAfter = failure.kind === 'overload' ? failure.retryAfter : null;
    return retryAfter === null ? delay : Math.max(delay, retryAfter);
  }
}
