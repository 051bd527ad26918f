/**
 * The connection state machine, sans I/O: events in (`start`, `opened`, `frame`, `closed`,
 * `timer`, `reconnectNow`, `tick`), actions out (`connect`, `send`, `close`, `schedule`),
 * in the style of python-websockets' protocol objects. The adapter (connection.ts) owns the
 * WebSocket and the timers and only carries out the actions; everything that decides lives
 * here and is unit-tested with a fake clock.
 */
import type {
  Ack,
  Alert,
  AnalyticsUpdate,
  ConnectionStatus,
  Error as ErrorMessage,
  MarketData,
  Ping,
  Subscribe,
  TechnicalIndicators,
  Unsubscribe,
} from '../generated/protocol';
import { Backoff, classifyClose, parseCloseReason, type FailureClass, type Rng } from './policy';
import { ResumeBook, type Gap, type SubscriptionType } from './resume';
import type { Validated } from './validate';

export type ServerMessage =
  | MarketData
  | TechnicalIndicators
  | AnalyticsUpdate
  | Alert
  | ConnectionStatus
  | Ack
  | ErrorMessage;

export type ConnectionState =
  'idle' | 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'refused';

export type Action =
  | { type: 'connect'; generation: number }
  | { type: 'send'; frame: Subscribe | Unsubscribe | Ping }
  | { type: 'close'; code: number; reason: string }
  | { type: 'schedule'; timer: 'retry'; generation: number; delay: number };

/** The server's heartbeat interval, clamped as the Python client does: 0 (none) or 1-300 s. */
export function clampHeartbeat(interval: number | null): number | null {
  if (interval === null || !Number.isFinite(interval) || interval <= 0) return null; // none
  return Math.min(Math.max(interval, 1), 300);
}

/** How many seconds without any frame make a connection dead, in heartbeat intervals. */
export const DEAD_AFTER_HEARTBEATS = 2;
/** Seconds between pings that measure the round-trip time. */
export const PING_INTERVAL_S = 5;

export interface Snapshot {
  state: ConnectionState;
  attempts: number;
  /** When the next attempt is due (the machine's clock), or null. */
  retryAt: number | null;
  /** Why the last connection or attempt ended, or why the server refused us. */
  reason: string;
  subscriptions: string[];
  /** Messages per second over the last few seconds. */
  rate: number;
  lastMessageAt: number | null;
  rtt: number | null;
  invalidFrames: number;
  lastInvalid: string;
  duplicatesDropped: number;
  epoch: string | null;
  heartbeatInterval: number | null;
  clientId: string | null;
  conflated: number;
}

/** Messages per second over a sliding window of one-second buckets. */
class RateMeter {
  private readonly buckets = new Map<number, number>();
  constructor(private readonly window = 5) {}
  add(now: number): void {
    const second = Math.floor(now);
    this.buckets.set(second, (this.buckets.get(second) ?? 0) + 1);
    for (const key of this.buckets.keys()) {
      if (key <= second - this.window) this.buckets.delete(key);
    }
  }
  rate(now: number): number {
    const second = Math.floor(now);
    let total = 0;
    for (const [key, count] of this.buckets) {
      if (key > second - this.window && key < second) total += count;
    }
    return total / (this.window - 1);
  }
}

export class ConnectionMachine {
  state: ConnectionState = 'idle';
  readonly book = new ResumeBook();
  private readonly backoff: Backoff;
  private readonly actions: Action[] = [];
  private readonly delivered: ServerMessage[] = [];
  private readonly gaps: Gap[] = [];
  /** Bumped for every connection attempt and every scheduled retry: stale events drop. */
  private generation = 0;
  private opened = false;
  private statusSeen = false;
  private retryAt: number | null = null;
  private reason = '';
  private lastFrameAt: number | null = null;
  private lastMessageAt: number | null = null;
  private lastPingAt: number | null = null;
  private readonly pings = new Map<string, number>();
  private rtt: number | null = null;
  private heartbeatInterval: number | null = null;
  private clientId: string | null = null;
  private conflated = 0;
  private invalidFrames = 0;
  private lastInvalid = '';
  private readonly meter = new RateMeter();

  constructor(rng: Rng = Math.random) {
    this.backoff = new Backoff(rng);
  }

  // ------------------------------------------------------------------ outputs

  /** Actions for the adapter, in order; each is returned once. */
  actionsToRun(): Action[] {
    return this.actions.splice(0);
  }

  /** Validated, new (non-duplicate) messages for the views; each is returned once. */
  messagesReceived(): ServerMessage[] {
    return this.delivered.splice(0);
  }

  /** Topics whose missed messages the server could not replay; each is returned once. */
  gapsFound(): Gap[] {
    return this.gaps.splice(0);
  }

  snapshot(now: number): Snapshot {
    return {
      state: this.state,
      attempts: this.backoff.attempts,
      retryAt: this.retryAt,
      reason: this.reason,
      subscriptions: this.book.topics(),
      rate: this.meter.rate(now),
      lastMessageAt: this.lastMessageAt,
      rtt: this.rtt,
      invalidFrames: this.invalidFrames,
      lastInvalid: this.lastInvalid,
      duplicatesDropped: this.book.dropped,
      epoch: this.book.epoch,
      heartbeatInterval: this.heartbeatInterval,
      clientId: this.clientId,
      conflated: this.conflated,
    };
  }

  // ------------------------------------------------------------------ inputs

  start(): void {
    if (this.state !== 'idle' && this.state !== 'offline' && this.state !== 'refused') return;
    this.connect('connecting');
  }

  /** The user asked: drop whatever is pending and connect at once, counters kept. */
  reconnectNow(): void {
    if (this.state === 'connected' || this.state === 'connecting') {
      this.actions.push({ type: 'close', code: 4000, reason: 'reconnect requested' });
    }
    this.connect('connecting');
  }

  /** The browser went offline: stop trying until `online()`. */
  offline(): void {
    if (this.state === 'connected' || this.state === 'connecting') {
      this.actions.push({ type: 'close', code: 4000, reason: 'browser offline' });
    }
    this.generation += 1; // any pending retry or socket event is now stale
    this.retryAt = null;
    this.state = 'offline';
    this.reason = 'browser offline';
  }

  online(): void {
    if (this.state === 'offline') this.connect('connecting');
  }

  want(type: SubscriptionType, symbol: string): void {
    const wanted = this.book.want(type, symbol);
    if (wanted && this.state === 'connected' && this.statusSeen) {
      this.actions.push({ type: 'send', frame: this.book.subscribeFrame(wanted) });
    }
  }

  unwant(type: SubscriptionType, symbol: string): void {
    const wanted = this.book.unwant(type, symbol);
    if (wanted && this.state === 'connected' && this.statusSeen) {
      this.actions.push({
        type: 'send',
        frame: {
          message_type: 'unsubscribe',
          subscription_type: wanted.type,
          symbol: wanted.symbol,
          request_id: this.book.nextRequestId('unsub'),
        },
      });
    }
  }

  /** The socket of attempt `generation` opened (the handshake succeeded). */
  openedSocket(generation: number, now: number): void {
    if (generation !== this.generation) return;
    this.opened = true;
    this.lastFrameAt = now;
  }

  /** A text frame arrived on the socket of attempt `generation`, already validated. */
  frame(generation: number, result: Validated, now: number): void {
    if (generation !== this.generation) return;
    this.lastFrameAt = now;
    if (!result.ok) {
      this.invalidFrames += 1;
      this.lastInvalid = result.error;
      return;
    }
    const message = result.message;
    switch (message.message_type) {
      case 'connection_status':
        this.onStatus(message, now);
        break;
      case 'ack':
        this.onAck(message, now);
        break;
      case 'error':
        this.reason = `${message.data.error_code}: ${message.data.error_message}`;
        break;
      default:
        if (!this.book.accept(message)) return;
        this.meter.add(now);
        this.lastMessageAt = now;
    }
    this.delivered.push(message);
  }

  /** The socket of attempt `generation` closed (or failed to open). */
  closed(generation: number, code: number, reasonText: string, now: number): void {
    if (generation !== this.generation) return;
    let failure: FailureClass;
    if (!this.opened) {
      failure = { kind: 'not_listening' };
      this.reason = 'no server answered';
    } else {
      failure = classifyClose(code, reasonText);
      const { reason } = parseCloseReason(reasonText);
      this.reason = reason ? `${reason} (${code})` : `closed (${code})`;
    }
    this.fail(failure, now);
  }

  /** A REST probe after a failed attempt found the server refusing us (401/403). */
  refused(reason: string): void {
    if (this.state !== 'reconnecting') return;
    this.generation += 1;
    this.retryAt = null;
    this.state = 'refused';
    this.reason = reason;
  }

  /** A timer scheduled with `generation` fired. */
  timer(generation: number): void {
    if (generation !== this.generation || this.state !== 'reconnecting') return;
    this.connect('reconnecting');
  }

  /** Called periodically (about once a second): pings and dead-connection detection. */
  tick(now: number): void {
    if (this.state !== 'connected' && this.state !== 'connecting') return;
    if (!this.opened || this.lastFrameAt === null) return;
    const interval = this.heartbeatInterval;
    if (interval !== null && now - this.lastFrameAt > DEAD_AFTER_HEARTBEATS * interval) {
      this.actions.push({ type: 'close', code: 4000, reason: 'heartbeat timeout' });
      this.reason = 'heartbeat timeout';
      this.fail({ kind: 'overload', retryAfter: null }, now);
      return;
    }
    if (
      this.state === 'connected' &&
      (this.lastPingAt === null || now - this.lastPingAt >= PING_INTERVAL_S)
    ) {
      this.lastPingAt = now;
      const requestId = this.book.nextRequestId('ping');
      this.pings.set(requestId, now);
      this.actions.push({ type: 'send', frame: { message_type: 'ping', request_id: requestId } });
    }
  }

  // ------------------------------------------------------------------ internals

  private connect(state: ConnectionState): void {
    this.generation += 1;
    this.opened = false;
    this.statusSeen = false;
    this.retryAt = null;
    this.lastFrameAt = null;
    this.pings.clear();
    this.state = state === 'connecting' ? 'connecting' : 'reconnecting';
    this.actions.push({ type: 'connect', generation: this.generation });
  }

  private fail(failure: FailureClass, now: number): void {
    // The delay is computed here, from the counters as they are now; the timer carries only
    // the generation, so a timer can never act on an attempt count from another outage.
    const delay = this.backoff.next(failure, now);
    this.generation += 1;
    this.opened = false;
    this.statusSeen = false;
    if (delay === null) {
      this.state = 'refused';
      this.retryAt = null;
      if (failure.kind === 'final') this.reason = failure.reason;
      return;
    }
    this.state = 'reconnecting';
    this.retryAt = now + delay;
    this.actions.push({
      type: 'schedule',
      timer: 'retry',
      generation: this.generation,
      delay,
    });
  }

  private onStatus(message: ConnectionStatus, now: number): void {
    const data = message.data;
    const fresh = !this.statusSeen;
    this.statusSeen = true;
    this.state = 'connected';
    this.reason = '';
    this.backoff.connected(now);
    this.heartbeatInterval = clampHeartbeat(data.heartbeat_interval ?? null);
    this.clientId = data.client_id;
    this.conflated = data.conflated ?? 0;
    for (const frame of this.book.onConnectionStatus(data.epoch, fresh)) {
      this.actions.push({ type: 'send', frame });
    }
    if (fresh) this.lastPingAt = now - PING_INTERVAL_S; // first RTT at the next tick
  }

  private onAck(message: Ack, now: number): void {
    const requestId = message.data.request_id ?? null;
    if (message.data.action === 'ping' && requestId !== null) {
      const sentAt = this.pings.get(requestId);
      if (sentAt !== undefined) {
        this.pings.delete(requestId);
        this.rtt = now - sentAt;
      }
      return;
    }
    const gap = this.book.onAck(message);
    if (gap) this.gaps.push(gap);
  }
}
