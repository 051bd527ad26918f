/**
 * Subscriptions and resume bookkeeping, pure.
 *
 * Keeps what the views want (subscription type + symbol), the last `seq` seen per topic and
 * the `epoch` it was seen under. After a reconnect it builds the `subscribe` frames with
 * `resume_from` and `epoch`; it drops any streamed message whose `seq` is not above the last
 * one seen (a replay overlapping what already arrived); it reports gaps (`recovered: false`)
 * so alert views can fill them from `rtstream/api/alerts?since=`.
 */
import type { Ack, Subscribe } from '../generated/protocol';

export type SubscriptionType = Subscribe['subscription_type'];

export interface StreamedFrame {
  topic: string;
  seq?: number;
}

export function topicFor(type: SubscriptionType, symbol: string): string {
  return `${type}:${symbol.trim().toUpperCase()}`;
}

/** The topic prefix the server uses for a subscription type (analytics -> analytics). */
export interface Wanted {
  type: SubscriptionType;
  symbol: string;
  topic: string;
}

export interface Gap {
  topic: string;
  /** For alert topics: the newest alert id the server has (fill up to it via REST). */
  lastAlertId: number | null;
  /** For alert topics: the identity of the store those ids belong to. */
  storeId: string | null;
}

export class ResumeBook {
  private readonly wanted = new Map<string, Wanted>();
  private readonly lastSeq = new Map<string, number>();
  /** The epoch the `lastSeq` values belong to. */
  epoch: string | null = null;
  private requestCounter = 0;
  dropped = 0;

  /** Add a wanted subscription; returns it, or null when it was already wanted. */
  want(type: SubscriptionType, symbol: string): Wanted | null {
    const topic = topicFor(type, symbol);
    if (this.wanted.has(topic)) return null;
    const entry = { type, symbol: symbol.trim().toUpperCase(), topic };
    this.wanted.set(topic, entry);
    return entry;
  }

  unwant(type: SubscriptionType, symbol: string): Wanted | null {
    const topic = topicFor(type, symbol);
    const entry = this.wanted.get(topic);
    if (!entry) return null;
    this.wanted.delete(topic);
    this.lastSeq.delete(topic);
    return entry;
  }

  topics(): string[] {
    return [...this.wanted.keys()];
  }

  seqOf(topic: string): number | undefined {
    return this.lastSeq.get(topic);
  }

  nextRequestId(prefix: string): string {
    this.requestCounter += 1;
    return `${prefix}-${this.requestCounter}`;
  }

  /**
   * A `connection_status` arrived with `epoch`. Returns the subscribe frames to send when
   * `fresh` (the first status of a new connection): with `resume_from` + the epoch the seqs
   * were seen under. A new epoch (server restarted) invalidates every seq afterwards.
   */
  onConnectionStatus(epoch: string, fresh: boolean): Subscribe[] {
    const frames = fresh ? [...this.wanted.values()].map((w) => this.subscribeFrame(w)) : [];
    if (this.epoch !== epoch) {
      this.epoch = epoch;
      this.lastSeq.clear();
    }
    return frames;
  }

  subscribeFrame(wanted: Wanted): Subscribe {
    const frame: Subscribe = {
      message_type: 'subscribe',
      subscription_type: wanted.type,
      symbol: wanted.symbol,
      request_id: this.nextRequestId('sub'),
    };
    const seq = this.lastSeq.get(wanted.topic);
    if (seq !== undefined && this.epoch !== null) {
      frame.resume_from = seq;
      frame.epoch = this.epoch;
    }
    return frame;
  }

  /** True when the message is new (and records its seq); false for a duplicate to drop. */
  accept(frame: StreamedFrame): boolean {
    const seq = frame.seq;
    if (seq === undefined) return true;
    const last = this.lastSeq.get(frame.topic);
    if (last !== undefined && seq <= last) {
      this.dropped += 1;
      return false;
    }
    this.lastSeq.set(frame.topic, seq);
    return true;
  }

  /** An ack of a subscribe: a gap when the server could not replay what we missed. */
  onAck(ack: Ack): Gap | null {
    const data = ack.data;
    if (data.action !== 'subscribe' || data.recovered !== false || !data.topic) return null;
    // Not recovered: the snapshot (or, for alerts, nothing) follows; seqs restart from the
    // server's, so the watermark goes.
    this.lastSeq.delete(data.topic);
    return {
      topic: data.topic,
      lastAlertId: data.last_alert_id ?? null,
      storeId: data.store_id ?? null,
    };
  }
}
