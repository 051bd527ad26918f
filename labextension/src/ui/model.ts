/**
 * The market monitor's model, pure: the latest figures per instrument, the alerts feed
 * (newest first, no duplicates) and which rows changed since the last frame.
 */
import type { AlertPayload } from '../generated/protocol';
import type { ServerMessage } from '../client/machine';

export interface Row {
  symbol: string;
  price: number | null;
  changePercent: number | null;
  volume: number | null;
  rsi: number | null;
  macdHist: number | null;
  trend: string;
  /** The `timestamp` of the newest market_data message applied (ms since the epoch). */
  stampMs: number | null;
  seq: number | null;
}

export const MAX_ALERTS = 200;

export class MonitorModel {
  readonly rows = new Map<string, Row>();
  readonly alerts: AlertPayload[] = [];
  private readonly alertIds = new Set<number>();
  readonly dirty = new Set<string>();
  alertsDirty = false;
  /** Messages applied since the last `takeDirty()` (counted, most never painted). */
  applied = 0;
  /** The server alert store the shown alert ids belong to (from the acks), if known. */
  storeId: string | null = null;

  row(symbol: string): Row {
    let row = this.rows.get(symbol);
    if (!row) {
      row = {
        symbol,
        price: null,
        changePercent: null,
        volume: null,
        rsi: null,
        macdHist: null,
        trend: '',
        stampMs: null,
        seq: null,
      };
      this.rows.set(symbol, row);
      this.dirty.add(symbol);
    }
    return row;
  }

  apply(message: ServerMessage): void {
    switch (message.message_type) {
      case 'market_data': {
        const row = this.row(message.data.symbol);
        row.price = message.data.price;
        row.changePercent = message.data.change_percent ?? null;
        row.volume = message.data.volume;
        const stamp = Date.parse(message.timestamp ?? message.data.timestamp);
        row.stampMs = Number.isNaN(stamp) ? null : stamp;
        row.seq = message.seq ?? null;
        this.dirty.add(row.symbol);
        break;
      }
      case 'technical_indicators': {
        const row = this.row(message.data.symbol);
        row.rsi = message.data.indicators.rsi_14 ?? null;
        row.macdHist = message.data.indicators.macd_hist ?? null;
        this.dirty.add(row.symbol);
        break;
      }
      case 'analytics_update': {
        const row = this.row(message.data.symbol);
        row.trend = message.data.results.trend ?? '';
        this.dirty.add(row.symbol);
        break;
      }
      case 'alert':
        this.addAlert(message.data);
        break;
      default:
        return;
    }
    this.applied += 1;
  }

  /** Add an alert (live or from the history API); newest first, each id once. */
  addAlert(alert: AlertPayload): void {
    if (this.alertIds.has(alert.alert_id)) return;
    this.alertIds.add(alert.alert_id);
    let index = this.alerts.findIndex((a) => a.alert_id < alert.alert_id);
    if (index < 0) index = this.alerts.length;
    this.alerts.splice(index, 0, alert);
    if (this.alerts.length > MAX_ALERTS) {
      for (const old of this.alerts.splice(MAX_ALERTS)) this.alertIds.delete(old.alert_id);
    }
    this.alertsDirty = true;
  }

  /**
   * Where to fill an alert gap from: the newest alert shown, or the server's position
   * (`last_alert_id` of the ack) when nothing was shown yet. When the server's alert store
   * was replaced (another `store_id`, or, from a server that does not say, a newest id below
   * ours) its ids start again: forget what is shown and fill from 0.
   */
  gapStart(serverLast: number | null, serverStore: string | null = null): number {
    const since = this.lastAlertId;
    const replaced =
      serverStore !== null && this.storeId !== null
        ? serverStore !== this.storeId
        : serverLast !== null && serverLast < since;
    if (serverStore !== null) this.storeId = serverStore;
    if (replaced) {
      this.alerts.length = 0;
      this.alertIds.clear();
      this.alertsDirty = true;
      return 0;
    }
    return since === 0 && serverLast !== null ? serverLast : since;
  }

  /** The newest alert id seen, or 0. */
  get lastAlertId(): number {
    return this.alerts[0]?.alert_id ?? 0;
  }

  takeDirty(): string[] {
    const symbols = [...this.dirty];
    this.dirty.clear();
    this.applied = 0;
    return symbols;
  }
}
