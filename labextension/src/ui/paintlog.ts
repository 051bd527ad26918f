/**
 * Latency instrumentation for benchmarks and browser tests: for each market_data message the
 * monitor painted, the time from the message's `timestamp` (server clock) to just after the
 * animation frame that painted it (page clock; same machine, same wall clock). Off unless the
 * page URL has `rtstream-paint-log` in its query; then `window.__rtstreamPaintLog` holds a ring
 * buffer of the last entries.
 */
export interface PaintEntry {
  topic: string;
  seq: number | null;
  latency_ms: number;
}

export interface PaintLog {
  capacity: number;
  total: number;
  entries: PaintEntry[];
  clear(): void;
}

declare global {
  interface Window {
    __rtstreamPaintLog?: PaintLog;
  }
}

export function paintLogEnabled(search: string): boolean {
  return new URLSearchParams(search).has('rtstream-paint-log');
}

export function createPaintLog(capacity = 20000): PaintLog {
  const log: PaintLog = {
    capacity,
    total: 0,
    entries: [],
    clear() {
      log.entries.length = 0;
      log.total = 0;
    },
  };
  return log;
}

export function record(log: PaintLog, entry: PaintEntry): void {
  // A ring: once full, the oldest slot is overwritten (O(1) per entry).
  log.entries[log.total % log.capacity] = entry;
  log.total += 1;
}

/** The wall clock in ms with sub-millisecond resolution. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}
