/** Text for the status bar and the monitor, pure (unit-tested). */
import type { Snapshot } from '../client/machine';

export function statusText(snapshot: Snapshot, now: number): string {
  switch (snapshot.state) {
    case 'connected':
      return 'connected';
    case 'connecting':
      return 'connecting';
    case 'reconnecting': {
      if (snapshot.retryAt === null || snapshot.retryAt <= now) return 'reconnecting';
      return `reconnecting in ${Math.ceil(snapshot.retryAt - now)} s`;
    }
    case 'refused':
      return `refused: ${snapshot.reason || 'by the server'}`;
    case 'offline':
      return 'offline';
    case 'idle':
      return 'offline';
  }
}

function seconds(value: number | null, digits = 1): string {
  return value === null ? 'n/a' : `${value.toFixed(digits)} s`;
}

export function statusTitle(snapshot: Snapshot, now: number): string {
  const age = snapshot.lastMessageAt === null ? null : Math.max(0, now - snapshot.lastMessageAt);
  const lines = [
    `rtstream: ${statusText(snapshot, now)}`,
    `subscriptions (${snapshot.subscriptions.length}): ${snapshot.subscriptions.join(', ') || 'none'}`,
    `message rate: ${snapshot.rate.toFixed(1)} msg/s`,
    `last message: ${age === null ? 'none yet' : `${seconds(age)} ago`}`,
    `round trip: ${snapshot.rtt === null ? 'n/a' : `${(snapshot.rtt * 1000).toFixed(1)} ms`}`,
    `invalid frames: ${snapshot.invalidFrames}${snapshot.lastInvalid ? ` (last: ${snapshot.lastInvalid})` : ''}`,
    `duplicates dropped: ${snapshot.duplicatesDropped}; conflated by the server: ${snapshot.conflated}`,
  ];
  if (snapshot.attempts > 0) lines.push(`attempts: ${snapshot.attempts}`);
  if (snapshot.reason) lines.push(`last reason: ${snapshot.reason}`);
  return lines.join('\n');
}

export function formatNumber(value: number | null | undefined, digits: number): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}
