/**
 * Reconnection policy, pure: which failure gets which delay, and which is final.
 *
 * The same rules as the Python client (jupyter_rtstream/core/backoff.py):
 * - nothing listening (refused, closed before the handshake, or a connection that ended
 *   without a close frame, 1006, as a killed server's does): quick retries, uniform
 *   0.25-1.0 s. A browser cannot tell a refused TCP connection from a failed HTTP upgrade
 *   (a proxy's 502), so such failures count as "not listening" for the first 30 s of an
 *   outage, then as overload;
 * - overload (every other close: 1013, 1001, 1012, 1008, 1011, 1000...; a dead connection):
 *   full jitter, base 0.5 s, factor 2, cap 30 s, never sooner than `retry_after` (clamped to
 *   120 s). The exponent resets only once a connection has stayed up for 10 s after its
 *   `connection_status`, so a server that accepts and closes at once is not hammered;
 * - final: closes 1002/1003/1007/1010 (a protocol error a retry would repeat), 4401/4403 and
 *   close reasons that say auth.
 */

export const QUICK_MIN_S = 0.25;
export const QUICK_MAX_S = 1.0;
export const BACKOFF_BASE_S = 0.5;
export const BACKOFF_FACTOR = 2;
export const BACKOFF_CAP_S = 30;
export const NOT_LISTENING_WINDOW_S = 30;
/** A connection up this long after its connection_status resets the exponent. */
export const STABLE_AFTER_S = 10;
/** Server-given waits above this are not believed. */
export const RETRY_AFTER_MAX_S = 120;
/** Close codes a retry would only repeat (as the Python client's REFUSED_CLOSE). */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([1002, 1003, 1007, 1010]);

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
          typeof retry === 'number' && Number.isFinite(retry) && retry >= 0
            ? Math.min(retry, RETRY_AFTER_MAX_S)
            : null;
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
  if (FINAL_CLOSE_CODES.has(code)) {
    return { kind: 'final', reason: reason || `close ${code}` };
  }
  if (code === 1006) {
    // No close frame: the server died or the network dropped; see whether anything listens.
    return { kind: 'not_listening' };
  }
  return { kind: 'overload', retryAfter };
}

/** Backoff bookkeeping: attempts of one outage, and the exponent across flapping. */
export class Backoff {
  /** Failures since the last `connection_status`: what the status bar shows. */
  attempts = 0;
  /** Exponential-class failures since the last stable connection: the next exponent. */
  exponent = 0;
  /** When the current outage began (seconds, the caller's clock); null when connected. */
  outageStart: number | null = null;
  /** When the current connection's `connection_status` arrived; null when not connected. */
  connectedAt: number | null = null;

  constructor(private readonly rng: Rng) {}

  /** A `connection_status` arrived: the outage is over (the exponent waits for stability). */
  connected(now: number): void {
    this.attempts = 0;
    this.outageStart = null;
    this.connectedAt = now;
  }

  reset(): void {
    this.attempts = 0;
    this.exponent = 0;
    this.outageStart = null;
    this.connectedAt = null;
  }

  /**
   * The delay (seconds) before the next attempt after a failure of class `failure` at `now`,
   * computed from the counters as they are at this very moment; null when final.
   */
  next(failure: FailureClass, now: number): number | null {
    if (this.connectedAt !== null) {
      if (now - this.connectedAt >= STABLE_AFTER_S) this.exponent = 0;
      this.connectedAt = null;
    }
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
