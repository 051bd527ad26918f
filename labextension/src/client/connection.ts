/**
 * The browser adapter around ConnectionMachine: one WebSocket, the timers, the browser's
 * online/offline events. It decides nothing; it carries out the machine's actions. One
 * instance per browser tab, shared by the status bar, the monitor and any other view.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Signal, type ISignal } from '@lumino/signaling';

import type { AlertPayload } from '../generated/protocol';
import { ConnectionMachine, type ServerMessage, type Snapshot } from './machine';
import type { Gap, SubscriptionType } from './resume';
import { validateFrame } from './validate';

export const SUBPROTOCOL = 'rtstream.v1';

/** Seconds on the page's monotonic clock. */
function now(): number {
  return performance.now() / 1000;
}

/** Page size of alert history requests (the server's default). */
const ALERT_PAGE = 1000;

export class RtstreamConnection {
  readonly machine: ConnectionMachine;
  private socket: WebSocket | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly ticker: ReturnType<typeof setInterval>;
  private readonly _message = new Signal<this, ServerMessage>(this);
  private readonly _stateChanged = new Signal<this, Snapshot>(this);
  private readonly _gap = new Signal<this, Gap>(this);
  private lastState = '';
  private disposed = false;

  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {
    this.machine = new ConnectionMachine();
    this.ticker = setInterval(() => {
      this.machine.tick(now());
      this.run();
    }, 1000);
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
  }

  /** Every validated, de-duplicated server message, in order. */
  get message(): ISignal<this, ServerMessage> {
    return this._message;
  }

  /** Emitted whenever the connection state (or its reason) changes. */
  get stateChanged(): ISignal<this, Snapshot> {
    return this._stateChanged;
  }

  /** A topic whose missed messages could not be replayed (alerts: fill from REST). */
  get gap(): ISignal<this, Gap> {
    return this._gap;
  }

  get url(): string {
    let url = URLExt.join(this.settings.wsUrl, 'rtstream/ws');
    if (this.settings.appendToken && this.settings.token) {
      url += `?token=${encodeURIComponent(this.settings.token)}`;
    }
    return url;
  }

  snapshot(): Snapshot {
    return this.machine.snapshot(now());
  }

  start(): void {
    this.machine.start();
    this.run();
  }

  reconnectNow(): void {
    this.machine.reconnectNow();
    this.run();
  }

  subscribe(type: SubscriptionType, symbol: string): void {
    this.machine.want(type, symbol);
    this.run();
  }

  unsubscribe(type: SubscriptionType, symbol: string): void {
    this.machine.unwant(type, symbol);
    this.run();
  }

  /** GET a JSON document under `rtstream/api/` with Jupyter's auth (token or cookie+XSRF). */
  async getJSON<T>(path: string): Promise<T> {
    const url = URLExt.join(this.settings.baseUrl, 'rtstream/api', path);
    const response = await ServerConnection.makeRequest(url, {}, this.settings);
    if (!response.ok) {
      throw new ServerConnection.ResponseError(response);
    }
    return (await response.json()) as T;
  }

  /** Alert history after `since` (oldest first), to fill a gap. */
  /** Every alert after `since`, oldest first: pages through `alerts?since=&limit=` until a
   * page comes back short (at most `maxPages`, so a misbehaving server cannot loop us). */
  async alertsSince(since: number, maxPages = 100): Promise<AlertPayload[]> {
    const out: AlertPayload[] = [];
    let cursor = since;
    for (let page = 0; page < maxPages; page++) {
      const body = await this.getJSON<{ alerts: AlertPayload[] }>(
        `alerts?since=${cursor}&limit=${ALERT_PAGE}`,
      );
      out.push(...body.alerts);
      const newest = body.alerts.reduce((max, a) => Math.max(max, a.alert_id), cursor);
      if (body.alerts.length < ALERT_PAGE || newest <= cursor) break;
      cursor = newest;
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearInterval(this.ticker);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.closeSocket(1000, 'disposed');
    Signal.clearData(this);
  }

  private readonly onOnline = (): void => {
    this.machine.online();
    this.run();
  };

  private readonly onOffline = (): void => {
    this.machine.offline();
    this.run();
  };

  /** Carry out the machine's actions, then hand its messages and gaps to the views. */
  private run(): void {
    if (this.disposed) return;
    for (const action of this.machine.actionsToRun()) {
      switch (action.type) {
        case 'connect':
          this.open(action.generation);
          break;
        case 'send':
          if (this.socket?.readyState === WebSocket.OPEN) {
            this.socket.send(JSON.stringify(action.frame));
          }
          break;
        case 'close':
          this.closeSocket(action.code, action.reason);
          break;
        case 'schedule': {
          if (this.retryTimer !== null) clearTimeout(this.retryTimer);
          const generation = action.generation;
          this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            this.machine.timer(generation);
            this.run();
          }, action.delay * 1000);
          break;
        }
      }
    }
    for (const message of this.machine.messagesReceived()) {
      try {
        this._message.emit(message);
      } catch (error) {
        console.error('rtstream: a message handler failed', error);
      }
    }
    for (const gap of this.machine.gapsFound()) this._gap.emit(gap);
    const snapshot = this.machine.snapshot(now());
    const key = `${snapshot.state}|${snapshot.reason}|${snapshot.retryAt ?? ''}`;
    if (key !== this.lastState) {
      this.lastState = key;
      this._stateChanged.emit(snapshot);
    }
  }

  private open(generation: number): void {
    this.closeSocket(4000, 'superseded');
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    let socket: WebSocket;
    try {
      socket = new this.settings.WebSocket(this.url, [SUBPROTOCOL]);
    } catch (error) {
      this.machine.closed(generation, 1006, String(error), now());
      this.run();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.machine.openedSocket(generation, now());
      this.run();
    };
    socket.onmessage = (event: MessageEvent) => {
      this.machine.frame(generation, validateFrame(event.data), now());
      this.run();
    };
    socket.onclose = (event: CloseEvent) => {
      if (this.socket === socket) this.socket = null;
      this.machine.closed(generation, event.code, event.reason, now());
      this.run();
      if (this.machine.state === 'reconnecting') void this.probe();
    };
  }

  /**
   * A browser hides why a WebSocket failed; a REST call does not. After a failed attempt,
   * ask `rtstream/api/status`: 401/403 means the server refuses us (final, shown with the
   * reason); anything else leaves the retry policy alone.
   */
  private async probe(): Promise<void> {
    try {
      const url = URLExt.join(this.settings.baseUrl, 'rtstream/api/status');
      const response = await ServerConnection.makeRequest(url, {}, this.settings);
      if (response.status === 401 || response.status === 403) {
        this.machine.refused(`${response.status} ${response.statusText || 'forbidden'}`.trim());
        this.run();
      }
    } catch {
      // nothing listens: the quick retry is already scheduled
    }
  }

  private closeSocket(code: number, reason: string): void {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    socket.onopen = null;
    socket.onmessage = null;
    socket.onclose = null;
    try {
      socket.close(code, reason);
    } catch {
      // already closed
    }
  }
}
