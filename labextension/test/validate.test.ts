import { describe, expect, it } from 'vitest';

import { KNOWN_TYPES, validateFrame } from '../src/client/validate';
import { SERVER_MESSAGE_TYPES } from '../src/generated/protocol';
import { frames } from './frames';

describe('validateFrame', () => {
  it('has one validator per server message type of the schema', () => {
    expect([...KNOWN_TYPES].sort()).toEqual([...SERVER_MESSAGE_TYPES].sort());
  });

  it('accepts every server message type, snake_case untouched', () => {
    for (const frame of Object.values(frames)) {
      const result = validateFrame(JSON.stringify(frame));
      expect(result, JSON.stringify(frame)).toMatchObject({ ok: true });
    }
    const result = validateFrame(JSON.stringify(frames.marketData));
    expect(result.ok && result.message.message_type === 'market_data').toBe(true);
    if (result.ok && result.message.message_type === 'market_data') {
      expect(result.message.data.change_percent).toBe(0.12);
    }
  });

  it('ignores unknown fields of a newer minor version', () => {
    const newer = { ...frames.marketData, version: '1.3', shiny: true };
    expect(validateFrame(JSON.stringify(newer)).ok).toBe(true);
  });

  it('rejects, with a reason, what does not match the schema', () => {
    const cases: [unknown, RegExp][] = [
      ['not json', /not JSON/],
      [[1, 2], /not a JSON object/],
      [{ message_type: 'telepathy' }, /unknown message_type/],
      [{ message_type: 'subscribe', subscription_type: 'market_data' }, /unknown message_type/],
      [{ ...frames.marketData, data: { ...frames.marketData.data, price: 'high' } }, /price/],
      [{ ...frames.marketData, seq: 1.5 }, /seq/],
      [{ ...frames.marketData, timestamp: 'yesterday' }, /timestamp/],
      [{ ...frames.alert, data: { ...frames.alert.data, severity: 'apocalyptic' } }, /severity/],
      [{ ...frames.connectionStatus, data: {} }, /required/],
    ];
    for (const [value, reason] of cases) {
      const result = validateFrame(typeof value === 'string' ? value : JSON.stringify(value));
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toMatch(reason);
    }
    expect(validateFrame(new ArrayBuffer(2))).toEqual({ ok: false, error: 'binary frame' });
  });
});
