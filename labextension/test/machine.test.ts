import { describe, expect, it } from 'vitest';

import { ConnectionMachine, type Action } from '../src/client/machine';
import { validateFrame } from '../src/client/validate';
import { frames } from './frames';

type Json = Record<string, unknown>;

function v(frame: unknown) {
  return validateFrame(JSON.stringify(frame));
}

function status(epoch = 'e1', heartbeat = 2): Json {
  return {
    ...frames.connectionStatus,
    data: { ...frames.connectionStatus.data, epoch, heartbeat_interval: heartbeat },
  };
}

function market(seq: number, symbol = 'AAPL'): Json {
  return {
    ...frames.marketData,
    topic: `market_data:${symbol}`,
    seq,
    data: { ...frames.marketData.data, symbol },
  };
}

function generationOf(actions: Action[]): number {
  const connect = actions.find(
    (a): a is Extract<Action, { type: 'connect' }> => a.type === 'connect',
  );
  if (!connect) throw new Error('no connect action');
  return connect.generation;
}

function sent(actions: Action[]) {
  return actions.flatMap((a) => (a.type === 'send' ? [a.frame] : []));
}

/** Start, open and receive a connection_status: a connected machine and its generation. */
function connected(machine: ConnectionMachine, now = 0, epoch = 'e1') {
  machine.start();
  const generation = generationOf(machine.actionsToRun());
  machine.openedSocket(generation, now);
  machine.frame(generation, v(status(epoch)), now);
  return { generation, actions: machine.actionsToRun() };
}

describe('ConnectionMachine', () => {
  it('connects, subscribes what is wanted once the status arrives', () => {
    const m = new ConnectionMachine(() => 0.5);
    m.want('market_data', 'aapl');
    m.want('alerts', '*');
    const { actions } = connected(m);
    expect(m.state).toBe('connected');
    expect(sent(actions)).toEqual([
      {
        message_type: 'subscribe',
        subscription_type: 'market_data',
        symbol: 'AAPL',
        request_id: 'sub-1',
      },
      { message_type: 'subscribe', subscription_type: 'alerts', symbol: '*', request_id: 'sub-2' },
    ]);
    m.want('analytics', 'MSFT');
    expect(sent(m.actionsToRun())).toMatchObject([
      { subscription_type: 'analytics', symbol: 'MSFT' },
    ]);
    m.unwant('analytics', 'MSFT');
    expect(sent(m.actionsToRun())).toMatchObject([{ message_type: 'unsubscribe', symbol: 'MSFT' }]);
  });

  it('retries quickly when nothing listens, exponentially after 30 s, resets on status', () => {
    const m = new ConnectionMachine(() => 0.999999999);
    m.start();
    let generation = generationOf(m.actionsToRun());
    const delays: number[] = [];
    let now = 0;
    while (now < 40) {
      m.closed(generation, 1006, '', now);
      expect(m.state).toBe('reconnecting');
      const [schedule] = m.actionsToRun();
      if (schedule?.type !== 'schedule') throw new Error('expected a schedule');
      delays.push(schedule.delay);
      now += schedule.delay;
      m.timer(schedule.generation);
      generation = generationOf(m.actionsToRun());
    }
    // Failures come about 1 s apart: the first 30 s of the outage are quick retries.
    const firstExponential = delays.findIndex((d) => d < 0.99);
    expect(firstExponential).toBeGreaterThanOrEqual(30);
    expect(firstExponential).toBeLessThanOrEqual(31);
    expect(delays.slice(0, firstExponential).every((d) => d > 0.99 && d <= 1)).toBe(true);
    const exponential = delays.slice(firstExponential);
    expect(exponential[0]).toBeCloseTo(0.5, 5);
    expect(exponential[1]).toBeCloseTo(1, 5);
    expect(m.snapshot(now).attempts).toBe(delays.length);
    m.openedSocket(generation, now);
    m.frame(generation, v(status()), now);
    expect(m.snapshot(now).attempts).toBe(0);
    m.closed(generation, 1006, '', now);
    const [next] = m.actionsToRun();
    expect(next).toMatchObject({ type: 'schedule' });
    if (next?.type === 'schedule') expect(next.delay).toBeLessThanOrEqual(1);
  });

  it('honours retry_after on overload and goes final on refusals', () => {
    const m = new ConnectionMachine(() => 0);
    const { generation } = connected(m);
    m.closed(generation, 1013, '{"reason":"SLOW_CONSUMER","retry_after":1.5}', 10);
    const [schedule] = m.actionsToRun();
    expect(schedule).toMatchObject({ type: 'schedule', delay: 1.5 });
    expect(m.snapshot(10)).toMatchObject({ state: 'reconnecting', retryAt: 11.5 });
    expect(m.snapshot(10).reason).toContain('SLOW_CONSUMER');

    for (const [code, reason] of [
      [1003, 'BINARY_FRAME'],
      [4403, 'forbidden'],
    ] as const) {
      const final = new ConnectionMachine(() => 0);
      const { generation: g } = connected(final);
      final.closed(g, code, reason, 0);
      expect(final.actionsToRun()).toEqual([]);
      expect(final.state).toBe('refused');
    }
  });

  it('ignores timers and socket events of superseded attempts', () => {
    const m = new ConnectionMachine(() => 0.5);
    m.start();
    const first = generationOf(m.actionsToRun());
    m.closed(first, 1006, '', 0);
    const [schedule] = m.actionsToRun();
    if (schedule?.type !== 'schedule') throw new Error('expected a schedule');
    m.reconnectNow();
    const second = generationOf(m.actionsToRun());
    m.timer(schedule.generation); // the old timer fires late
    expect(m.actionsToRun()).toEqual([]);
    m.closed(first, 1006, '', 1); // a late close of the first socket
    expect(m.actionsToRun()).toEqual([]);
    m.openedSocket(second, 1);
    m.frame(second, v(status()), 1);
    expect(m.state).toBe('connected');
  });

  it('detects a dead connection after two heartbeat intervals without frames', () => {
    const m = new ConnectionMachine(() => 0);
    connected(m, 0);
    m.tick(1);
    expect(sent(m.actionsToRun())).toMatchObject([{ message_type: 'ping' }]);
    m.tick(3.9);
    expect(m.actionsToRun()).toEqual([]);
    m.tick(4.1);
    const actions = m.actionsToRun();
    expect(actions[0]).toEqual({ type: 'close', code: 4000, reason: 'heartbeat timeout' });
    expect(actions[1]).toMatchObject({ type: 'schedule' });
    expect(m.state).toBe('reconnecting');
  });

  it('never declares a connection dead when the server sends no heartbeats', () => {
    const m = new ConnectionMachine(() => 0);
    m.start();
    const generation = generationOf(m.actionsToRun());
    m.openedSocket(generation, 0);
    m.frame(generation, v(status('e1', 0)), 0); // heartbeat_interval 0: heartbeats off
    m.actionsToRun();
    m.tick(600);
    expect(m.state).toBe('connected');
    expect(m.actionsToRun().filter((a) => a.type === 'close')).toEqual([]);
  });

  it('measures the round trip from ping to ack', () => {
    const m = new ConnectionMachine(() => 0);
    const { generation } = connected(m, 0);
    m.tick(1);
    const [ping] = sent(m.actionsToRun());
    const ack = {
      ...frames.ack,
      data: { request_id: ping?.request_id, action: 'ping', subscriptions: [] },
    };
    m.frame(generation, v(ack), 1.025);
    expect(m.snapshot(2).rtt).toBeCloseTo(0.025, 9);
  });

  it('resumes from the last seq and epoch, and drops what it already has', () => {
    const m = new ConnectionMachine(() => 0);
    m.want('market_data', 'AAPL');
    const { generation } = connected(m, 0, 'e1');
    for (const seq of [1, 2, 3]) m.frame(generation, v(market(seq)), 1);
    expect(m.messagesReceived().filter((x) => x.message_type === 'market_data')).toHaveLength(3);

    m.closed(generation, 1006, '', 2);
    const [schedule] = m.actionsToRun();
    if (schedule?.type !== 'schedule') throw new Error('expected a schedule');
    m.timer(schedule.generation);
    const next = generationOf(m.actionsToRun());
    m.openedSocket(next, 3);
    m.frame(next, v(status('e1')), 3);
    expect(sent(m.actionsToRun())).toMatchObject([
      { message_type: 'subscribe', symbol: 'AAPL', resume_from: 3, epoch: 'e1' },
    ]);
    for (const seq of [2, 3, 4]) m.frame(next, v(market(seq)), 3);
    const delivered = m.messagesReceived().filter((x) => x.message_type === 'market_data');
    expect(delivered.map((x) => ('seq' in x ? x.seq : null))).toEqual([4]);
    expect(m.snapshot(3).duplicatesDropped).toBe(2);
  });

  it('accepts low seqs again after the server restarted (new epoch)', () => {
    const m = new ConnectionMachine(() => 0);
    m.want('market_data', 'AAPL');
    const { generation } = connected(m, 0, 'e1');
    m.frame(generation, v(market(50)), 1);
    m.closed(generation, 1006, '', 2);
    const [schedule] = m.actionsToRun();
    if (schedule?.type !== 'schedule') throw new Error('expected a schedule');
    m.timer(schedule.generation);
    const next = generationOf(m.actionsToRun());
    m.openedSocket(next, 3);
    m.frame(next, v(status('e2')), 3);
    expect(sent(m.actionsToRun())).toMatchObject([{ resume_from: 50, epoch: 'e1' }]);
    m.messagesReceived();
    m.frame(next, v(market(1)), 3);
    expect(m.messagesReceived()).toHaveLength(1);
  });

  it('reports an alert gap the server could not replay', () => {
    const m = new ConnectionMachine(() => 0);
    m.want('alerts', '*');
    const { generation } = connected(m);
    const ack = {
      ...frames.ack,
      data: {
        request_id: 'sub-1',
        action: 'subscribe',
        topic: 'alerts:*',
        subscriptions: ['alerts:*'],
        recovered: false,
        last_alert_id: 12,
      },
    };
    m.frame(generation, v(ack), 1);
    expect(m.gapsFound()).toEqual([{ topic: 'alerts:*', lastAlertId: 12, storeId: null }]);
  });

  it('counts invalid frames and carries on', () => {
    const m = new ConnectionMachine(() => 0);
    const { generation } = connected(m);
    m.frame(generation, v({ message_type: 'market_data', topic: 'x' }), 1);
    m.frame(generation, validateFrame('{not json'), 1);
    m.frame(generation, v(market(1)), 1);
    const snap = m.snapshot(1);
    expect(snap.invalidFrames).toBe(2);
    expect(snap.lastInvalid).toBe('not JSON');
    expect(m.state).toBe('connected');
    expect(m.messagesReceived().map((x) => x.message_type)).toEqual([
      'connection_status',
      'market_data',
    ]);
  });

  it('goes offline with the browser and back', () => {
    const m = new ConnectionMachine(() => 0);
    connected(m);
    m.offline();
    expect(m.actionsToRun()).toEqual([{ type: 'close', code: 4000, reason: 'browser offline' }]);
    expect(m.state).toBe('offline');
    m.online();
    expect(m.actionsToRun()).toMatchObject([{ type: 'connect' }]);
  });

  it('a REST probe that gets 403 makes a retrying connection final', () => {
    const m = new ConnectionMachine(() => 0.5);
    m.start();
    const g = generationOf(m.actionsToRun());
    m.closed(g, 1006, '', 0);
    m.actionsToRun();
    m.refused('403 Forbidden');
    expect(m.snapshot(0)).toMatchObject({
      state: 'refused',
      reason: '403 Forbidden',
      retryAt: null,
    });
  });
});
