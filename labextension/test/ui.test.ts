import { describe, expect, it } from 'vitest';

import { ConnectionMachine } from '../src/client/machine';
import { validateFrame } from '../src/client/validate';
import { statusText, statusTitle } from '../src/ui/format';
import { MAX_ALERTS, MonitorModel } from '../src/ui/model';
import { createPaintLog, paintLogEnabled, record } from '../src/ui/paintlog';
import { frames } from './frames';

function apply(model: MonitorModel, frame: unknown) {
  const result = validateFrame(JSON.stringify(frame));
  if (!result.ok) throw new Error(result.error);
  model.apply(result.message);
}

describe('status text', () => {
  it('says connected, reconnecting in N s, refused with the reason', () => {
    const m = new ConnectionMachine(() => 0);
    m.start();
    const [connect] = m.actionsToRun();
    if (connect?.type !== 'connect') throw new Error('no connect');
    m.openedSocket(connect.generation, 0);
    m.frame(connect.generation, validateFrame(JSON.stringify(frames.connectionStatus)), 0);
    expect(statusText(m.snapshot(0), 0)).toBe('connected');
    m.closed(connect.generation, 1001, '{"reason":"SERVER_SHUTDOWN","retry_after":4.2}', 10);
    expect(statusText(m.snapshot(10), 10)).toBe('reconnecting in 5 s');
    expect(statusTitle(m.snapshot(10), 10)).toContain('last reason: SERVER_SHUTDOWN (1001)');
    const refused = { ...m.snapshot(10), state: 'refused' as const, reason: '403 Forbidden' };
    expect(statusText(refused, 10)).toBe('refused: 403 Forbidden');
  });
});

describe('MonitorModel', () => {
  it('merges market data, indicators and analytics into one row per symbol', () => {
    const model = new MonitorModel();
    apply(model, frames.marketData);
    apply(model, frames.indicators);
    apply(model, frames.analytics);
    expect(model.rows.get('AAPL')).toMatchObject({
      price: 190.5,
      changePercent: 0.12,
      volume: 300,
      rsi: 55.5,
      macdHist: -0.25,
      trend: 'bullish',
      seq: 7,
    });
    expect(model.takeDirty()).toEqual(['AAPL']);
    expect(model.takeDirty()).toEqual([]);
  });

  it('keeps alerts newest first, each once, bounded', () => {
    const model = new MonitorModel();
    for (const id of [3, 1, 2, 3]) {
      model.addAlert({ ...frames.alert.data, alert_id: id });
    }
    expect(model.alerts.map((a) => a.alert_id)).toEqual([3, 2, 1]);
    expect(model.lastAlertId).toBe(3);
    for (let id = 4; id < MAX_ALERTS + 10; id++)
      model.addAlert({ ...frames.alert.data, alert_id: id });
    expect(model.alerts).toHaveLength(MAX_ALERTS);
    expect(model.alerts[0]?.alert_id).toBe(MAX_ALERTS + 9);
  });
});

describe('MonitorModel.gapStart', () => {
  it('fills from the newest alert shown, or from the server position when none is', () => {
    const model = new MonitorModel();
    expect(model.gapStart(null)).toBe(0);
    expect(model.gapStart(42)).toBe(42); // nothing shown: not the oldest alert ever
    for (const id of [3, 4]) model.addAlert({ ...frames.alert.data, alert_id: id });
    expect(model.gapStart(9)).toBe(4);
  });

  it('starts again from 0 when the server store was replaced (its ids went back)', () => {
    const model = new MonitorModel();
    for (const id of [7, 8]) model.addAlert({ ...frames.alert.data, alert_id: id });
    expect(model.gapStart(2)).toBe(0);
    expect(model.alerts).toEqual([]);
    model.addAlert({ ...frames.alert.data, alert_id: 1 }); // the new store's first alert
    expect(model.alerts.map((a) => a.alert_id)).toEqual([1]);
  });
});

describe('MonitorModel.gapStart with store identities', () => {
  it('tells a replaced store by its id even when it is past our watermark', () => {
    const model = new MonitorModel();
    expect(model.gapStart(0, 'S1')).toBe(0);
    for (const id of [1, 2]) model.addAlert({ ...frames.alert.data, alert_id: id });
    expect(model.gapStart(9, 'S1')).toBe(2); // the same store, restarted
    expect(model.gapStart(9, 'S2')).toBe(0); // another store, already at 9
    expect(model.alerts).toEqual([]);
  });
});

describe('paint log', () => {
  it('is enabled by a query flag and keeps a bounded ring', () => {
    expect(paintLogEnabled('?rtstream-paint-log=1')).toBe(true);
    expect(paintLogEnabled('?token=x')).toBe(false);
    const log = createPaintLog(3);
    for (let i = 0; i < 5; i++) record(log, { topic: 't', seq: i, latency_ms: i });
    expect(log.total).toBe(5);
    expect(log.entries.map((e) => e.seq).sort()).toEqual([2, 3, 4]);
  });
});
