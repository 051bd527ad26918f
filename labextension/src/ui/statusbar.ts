/** The status bar item: live connection state, details on hover. */
import { Widget } from '@lumino/widgets';

import type { RtstreamConnection } from '../client/connection';
import { statusText, statusTitle } from './format';

export class RtstreamStatus extends Widget {
  private readonly label: HTMLSpanElement;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(private readonly connection: RtstreamConnection) {
    super();
    this.addClass('jp-RtstreamStatus');
    this.label = document.createElement('span');
    this.label.className = 'jp-RtstreamStatus-label';
    this.node.appendChild(this.label);
    this.node.dataset.rtstreamState = 'idle';
    connection.stateChanged.connect(this.refresh, this);
    // The countdown and the hover figures move without any state change.
    this.timer = setInterval(() => {
      this.refresh();
    }, 1000);
    this.refresh();
  }

  refresh(): void {
    const snapshot = this.connection.snapshot();
    const now = performance.now() / 1000;
    this.label.textContent = `rtstream: ${statusText(snapshot, now)}`;
    this.node.title = statusTitle(snapshot, now);
    this.node.dataset.rtstreamState = snapshot.state;
  }

  override dispose(): void {
    clearInterval(this.timer);
    this.connection.stateChanged.disconnect(this.refresh, this);
    super.dispose();
  }
}
