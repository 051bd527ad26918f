import { describe, expect, it } from 'vitest';

import {
  Backoff,
  BACKOFF_CAP_S,
  classifyClose,
  fullJitterDelay,
  parseCloseReason,
  quickDelay,
} from '../src/client/policy';

const fixed = (value: number) => () => value;

describe('delays', () => {
  it('quick retries are uniform in 0.25-1.0 s', () => {
    expect(quickDelay(fixed(0))).toBe(0.25);
    expect(quickDelay(fixed(0.999999))).toBeCloseTo(1.0, 5);
  });

  it('full jitter grows by 2 from 0.5 s and is capped at 30 s', () => {
    const top = fixed(0.999999999);
    expect(fullJitterDelay(0, top)).toBeCloseTo(0.5, 6);
    expect(fullJitterDelay(1, top)).toBeCloseTo(1, 6);
    expect(fullJitterDelay(5, top)).toBeCloseTo(16, 5);
    expect(fullJitterDelay(6, top)).toBeCloseTo(BACKOFF_CAP_S, 5);
    expect(fullJitterDelay(500, top)).toBeCloseTo(BACKOFF_CAP_S, 5);
    expect(fullJitterDelay(3, fixed(0))).toBe(0);
  });
});

describe('close reasons', () => {
  it('parses the JSON reason with retry_after', () => {
    expect(parseCloseReason('{"reason":"SERVER_SHUTDOWN","retry_after":2.5}')).toEqual({
      reason: 'SERVER_SHUTDOWN',
      retryAfter: 2.5,
    });
    expect(parseCloseReason('going away')).toEqual({ reason: 'going away', retryAfter: null });
    expect(parseCloseReason('{broken')).toEqual({ reason: '{broken', retryAfter: null });
    expect(parseCloseReason('{"retry_after":-1}').retryAfter).toBeNull();
  });

  it('classifies closes', () => {
    expect(classifyClose(1013, '{"reason":"SLOW_CONSUMER","retry_after":1}')).toEqual({
      kind: 'overload',
      retryAfter: 1,
    });
    expect(classifyClose(1001, '{"reason":"SERVER_SHUTDOWN","retry_after":3}')).toEqual({
      kind: 'overload',
      retryAfter: 3,
    });
    expect(classifyClose(1012, '{"reason":"RESTART","retry_after":2}').kind).toBe('overload');
    expect(classifyClose(1001, '').kind).toBe('overload');
    expect(classifyClose(1006, '').kind).toBe('not_listening');
    expect(classifyClose(1008, '{"reason":"RATE_LIMITED","retry_after":5}')).toEqual({
      kind: 'overload',
      retryAfter: 5,
    });
    expect(classifyClose(1008, '{"reason":"CONNECTION_LIMIT","retry_after":30}')).toEqual({
      kind: 'overload',
      retryAfter: 30,
    });
    expect(classifyClose(1013, '{"reason":"SLOW_CONSUMER","retry_after":1e9}')).toEqual({
      kind: 'overload',
      retryAfter: 120,
    });
    expect(classifyClose(4401, '').kind).toBe('final');
    expect(classifyClose(4403, 'nope').kind).toBe('final');
    expect(classifyClose(1011, 'authentication expired').kind).toBe('final');
    for (const code of [1002, 1003, 1007, 1010]) {
      expect(classifyClose(code, '').kind).toBe('final');
    }
    expect(classifyClose(1009, 'MESSAGE_TOO_LARGE').kind).toBe('overload');
  });
});

describe('Backoff', () => {
  it('retries quickly while nothing listens, for the first 30 s of an outage', () => {
    const backoff = new Backoff(fixed(0.5));
    for (let t = 0; t < 30; t += 0.625) {
      expect(backoff.next({ kind: 'not_listening' }, 100 + t)).toBeCloseTo(0.625, 9);
    }
    expect(backoff.exponent).toBe(0);
  });

  it('turns exponential after 30 s of failures', () => {
    const backoff = new Backoff(fixed(0.999999999));
    backoff.next({ kind: 'not_listening' }, 0);
    expect(backoff.next({ kind: 'not_listening' }, 30)).toBeCloseTo(0.5, 6);
    expect(backoff.next({ kind: 'not_listening' }, 31)).toBeCloseTo(1, 6);
    expect(backoff.next({ kind: 'not_listening' }, 32)).toBeCloseTo(2, 6);
  });

  it('never retries sooner than retry_after', () => {
    const backoff = new Backoff(fixed(0));
    expect(backoff.next({ kind: 'overload', retryAfter: 4 }, 0)).toBe(4);
    const high = new Backoff(fixed(0.999999999));
    for (let i = 0; i < 4; i++) high.next({ kind: 'overload', retryAfter: null }, i);
    expect(high.next({ kind: 'overload', retryAfter: 1 }, 5)).toBeCloseTo(8, 5);
  });

  it('resets the exponent only after a connection stayed up for 10 s', () => {
    const backoff = new Backoff(fixed(0.999999999));
    const overload = { kind: 'overload', retryAfter: null } as const;
    backoff.next(overload, 0);
    backoff.next(overload, 1);
    backoff.connected(2); // accepted, then closed at once: still escalating
    expect(backoff.attempts).toBe(0);
    expect(backoff.next(overload, 3)).toBeCloseTo(2, 5);
    backoff.connected(10);
    expect(backoff.next(overload, 20)).toBeCloseTo(0.5, 5); // stayed up 10 s: reset
  });

  it('is final with no delay and resets everything', () => {
    const backoff = new Backoff(fixed(0.5));
    expect(backoff.next({ kind: 'final', reason: 'x' }, 0)).toBeNull();
    backoff.next({ kind: 'overload', retryAfter: null }, 1);
    backoff.next({ kind: 'overload', retryAfter: null }, 2);
    expect(backoff.attempts).toBe(2);
    backoff.reset();
    expect([backoff.attempts, backoff.exponent, backoff.outageStart]).toEqual([0, 0, null]);
  });
});
