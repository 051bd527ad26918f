/**
 * The market monitor: a main-area panel with a live instrument table, an alerts feed and the
 * connection state. Messages only touch the model; the DOM is updated once per animation
 * frame, for the rows that changed, and wire text always goes in as textContent.
 */
import { Widget } from '@lumino/widgets';

import type { RtstreamConnection } from '../client/connection';
import type { ServerMessage, Snapshot } from '../client/machine';
import type { Gap, SubscriptionType } from '../client/resume';
import type { AlertPayload } from '../generated/protocol';
import { formatNumber, statusText } from './format';
import { MonitorModel } from './model';
import { record, wallClockMs, type PaintEntry, type PaintLog } from './paintlog';

const STREAMS: SubscriptionType[] = ['market_data', 'technical_indicators', 'analytics'];
const COLUMNS = ['Symbol', 'Price', 'Change %', 'Volume', 'RSI', 'MACD hist', 'Trend'];
/** Seconds between polls of rtstream/api/instruments (symbols pushed via POST ticks). */
const DISCOVERY_INTERVAL_MS = 3000;
/** Symbols the monitor subscribes to: 3 topics each, within the server's default
 * `max_subscriptions` (100) beside `alerts:*`. */
const MAX_SYMBOLS = 33;

interface RowCells {
  tr: HTMLTableRowElement;
  cells: HTMLTableCellElement[];
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class MarketMonitor extends Widget {
  readonly model = new MonitorModel();
  private readonly tbody: HTMLTableSectionElement;
  private readonly alertList: HTMLUListElement;
  private readonly stateLabel: HTMLSpanElement;
  private readonly invalidLabel: HTMLSpanElement;
  private readonly rowCells = new Map<string, RowCells>();
  private frame: number | null = null;
  private readonly discovery: ReturnType<typeof setInterval>;
  private readonly channel = new MessageChannel();
  private pendingPaint: PaintEntry[] = [];

  constructor(
    private readonly connection: RtstreamConnection,
    private readonly paintLog: PaintLog | null = null,
  ) {
    super();
    this.id = 'rtstream-market-monitor';
    this.title.label = 'Market Monitor';
    this.title.closable = true;
    this.addClass('jp-RtstreamMonitor');

    const header = el('div', 'jp-RtstreamMonitor-header');
    header.appendChild(el('span', 'jp-RtstreamMonitor-title', 'Market monitor'));
    this.stateLabel = el('span', 'jp-RtstreamMonitor-state');
    this.invalidLabel = el('span', 'jp-RtstreamMonitor-invalid');
    header.append(this.stateLabel, this.invalidLabel);

    const table = el('table', 'jp-RtstreamMonitor-table');
    const headRow = el('tr');
    for (const name of COLUMNS) headRow.appendChild(el('th', undefined, name));
    table.appendChild(el('thead')).appendChild(headRow);
    this.tbody = table.appendChild(el('tbody'));

    const alerts = el('section', 'jp-RtstreamMonitor-alerts');
    alerts.appendChild(el('h3', undefined, 'Alerts'));
    this.alertList = alerts.appendChild(el('ul', 'jp-RtstreamMonitor-alertList'));

    this.node.append(header, table, alerts);

    this.channel.port1.onmessage = () => {
      this.afterPaint();
    };
    connection.message.connect(this.onMessage, this);
    connection.stateChanged.connect(this.onState, this);
    connection.gap.connect(this.onGap, this);
    connection.subscribe('alerts', '*');
    this.discovery = setInterval(() => void this.discover(), DISCOVERY_INTERVAL_MS);
    void this.discover();
    this.onState();
  }

  override dispose(): void {
    if (this.isDisposed) return;
    clearInterval(this.discovery);
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.channel.port1.close();
    this.connection.message.disconnect(this.onMessage, this);
    this.connection.stateChanged.disconnect(this.onState, this);
    this.connection.gap.disconnect(this.onGap, this);
    // The connection is shared by the tab: release what this panel subscribed to.
    for (const symbol of this.model.rows.keys()) {
      for (const type of STREAMS) this.connection.unsubscribe(type, symbol);
    }
    this.connection.unsubscribe('alerts', '*');
    super.dispose();
  }

  /** Subscribe to every instrument the server knows (new ones appear via POST ticks). */
  private async discover(): Promise<void> {
    try {
      const body = await this.connection.getJSON<{ instruments: { symbol: string }[] }>(
        'instruments',
      );
      for (const { symbol } of body.instruments) {
        if (this.model.rows.has(symbol)) continue;
        if (this.model.rows.size >= MAX_SYMBOLS) break;
        this.model.row(symbol);
        for (const type of STREAMS) this.connection.subscribe(type, symbol);
      }
      this.schedule();
    } catch {
      // the server is away: the next poll (or the reconnect) tries again
    }
  }

  private onMessage(_: RtstreamConnection, message: ServerMessage): void {
    this.model.apply(message);
    if (message.message_type === 'connection_status') this.onState();
    this.schedule();
  }

  private onState(): void {
    const snapshot: Snapshot = this.connection.snapshot();
    this.stateLabel.textContent = statusText(snapshot, performance.now() / 1000);
    this.stateLabel.dataset.rtstreamState = snapshot.state;
    this.invalidLabel.textContent = snapshot.invalidFrames
      ? `invalid frames: ${snapshot.invalidFrames}`
      : '';
  }

  private onGap(_: RtstreamConnection, gap: Gap): void {
    if (!gap.topic.startsWith('alerts:')) return;
    void this.fillAlerts(gap.lastAlertId, gap.storeId);
  }

  /** Fill an alert gap from the history, paged, from `MonitorModel.gapStart`. */
  private async fillAlerts(serverLast: number | null, store: string | null): Promise<void> {
    const since = this.model.gapStart(serverLast, store);
    try {
      const alerts: AlertPayload[] = await this.connection.alertsSince(since);
      for (const alert of alerts) this.model.addAlert(alert);
      this.schedule();
    } catch {
      // the next gap (or reconnect) tries again
    }
  }

  private schedule(): void {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.render();
    });
  }

  private render(): void {
    for (const symbol of this.model.takeDirty()) {
      const row = this.model.rows.get(symbol);
      if (!row) continue;
      const cells = this.cellsFor(symbol);
      const values = [
        row.symbol,
        formatNumber(row.price, 2),
        formatNumber(row.changePercent, 2),
        formatNumber(row.volume, 0),
        formatNumber(row.rsi, 1),
        formatNumber(row.macdHist, 3),
        row.trend || '–',
      ];
      values.forEach((text, index) => {
        const cell = cells.cells[index];
        if (cell && cell.textContent !== text) cell.textContent = text;
      });
      cells.tr.dataset.trend = row.trend;
      cells.tr.dataset.seq = String(row.seq ?? '');
      if (this.paintLog && row.stampMs !== null) {
        this.pendingPaint.push({
          topic: `market_data:${symbol}`,
          seq: row.seq,
          latency_ms: row.stampMs,
        });
        row.stampMs = null;
      }
    }
    if (this.model.alertsDirty) {
      this.model.alertsDirty = false;
      this.renderAlerts();
    }
    if (this.pendingPaint.length) this.channel.port2.postMessage(null);
    this.onState();
  }

  /** Runs after the frame that painted the pending rows: stamps their latency. */
  private afterPaint(): void {
    const log = this.paintLog;
    if (!log) return;
    const painted = wallClockMs();
    for (const entry of this.pendingPaint) {
      record(log, { ...entry, latency_ms: painted - entry.latency_ms });
    }
    this.pendingPaint = [];
  }

  private cellsFor(symbol: string): RowCells {
    let found = this.rowCells.get(symbol);
    if (!found) {
      const tr = el('tr', 'jp-RtstreamMonitor-row');
      tr.dataset.symbol = symbol;
      const cells = COLUMNS.map(() => tr.appendChild(el('td')));
      found = { tr, cells };
      this.rowCells.set(symbol, found);
      // Rows sorted by symbol: insert before the first greater one.
      const next = [...this.rowCells.keys()].filter((s) => s > symbol).sort()[0];
      const before = next === undefined ? null : (this.rowCells.get(next)?.tr ?? null);
      this.tbody.insertBefore(tr, before);
    }
    return found;
  }

  private renderAlerts(): void {
    const items = this.model.alerts.map((alert) => {
      const li = el('li', `jp-RtstreamMonitor-alert jp-mod-${alert.severity}`);
      li.dataset.alertId = String(alert.alert_id);
      li.append(
        el('span', 'jp-RtstreamMonitor-alertTime', alert.timestamp.slice(11, 19)),
        el('span', 'jp-RtstreamMonitor-alertSeverity', alert.severity),
        el('span', 'jp-RtstreamMonitor-alertSymbol', alert.symbol),
        el('span', 'jp-RtstreamMonitor-alertRule', alert.rule_name),
        el('span', 'jp-RtstreamMonitor-alertMessage', alert.message),
      );
      return li;
    });
    this.alertList.replaceChildren(...items);
  }
}
