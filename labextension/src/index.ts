/**
 * jupyter-rtstream's JupyterLab extension: one shared connection per tab, a status bar item,
 * palette commands and the market monitor panel.
 */
import {
  ILayoutRestorer,
  type JupyterFrontEnd,
  type JupyterFrontEndPlugin,
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  WidgetTracker,
  showDialog,
} from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Token } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { RtstreamConnection } from './client/connection';
import { MarketMonitor } from './ui/monitor';
import { createPaintLog, paintLogEnabled } from './ui/paintlog';
import { RtstreamStatus } from './ui/statusbar';

export { RtstreamConnection } from './client/connection';
export type { Snapshot, ServerMessage, ConnectionState } from './client/machine';

/** The tab's one rtstream connection, for other extensions to share. */
export const IRtstreamConnection = new Token<RtstreamConnection>(
  'jupyter-rtstream:IRtstreamConnection',
  'The browser tab’s single rtstream WebSocket connection.',
);

export const CommandIDs = {
  reconnect: 'rtstream:reconnect',
  status: 'rtstream:show-status',
  monitor: 'rtstream:open-monitor',
} as const;

const CATEGORY = 'Real-time Stream';

const plugin: JupyterFrontEndPlugin<RtstreamConnection> = {
  id: 'jupyter-rtstream:plugin',
  description: 'Status bar, commands and market monitor for jupyter-rtstream.',
  autoStart: true,
  provides: IRtstreamConnection,
  optional: [IStatusBar, ICommandPalette, ILauncher, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null,
  ): RtstreamConnection => {
    const connection = new RtstreamConnection(app.serviceManager.serverSettings);
    connection.start();
    const paintLog = paintLogEnabled(window.location.search) ? createPaintLog() : null;
    if (paintLog) window.__rtstreamPaintLog = paintLog;

    if (statusBar) {
      statusBar.registerStatusItem('jupyter-rtstream:status', {
        item: new RtstreamStatus(connection),
        align: 'left',
        rank: 100,
      });
    }

    const tracker = new WidgetTracker<MainAreaWidget<MarketMonitor>>({
      namespace: 'rtstream-monitor',
    });

    app.commands.addCommand(CommandIDs.reconnect, {
      label: 'Real-time Stream: Reconnect Now',
      caption: 'Drop any pending retry and connect to rtstream/ws at once',
      execute: () => {
        connection.reconnectNow();
      },
    });

    app.commands.addCommand(CommandIDs.status, {
      label: 'Real-time Stream: Show Server Status',
      caption: 'GET rtstream/api/status',
      execute: async () => {
        const body = new Widget();
        const pre = document.createElement('pre');
        pre.className = 'jp-RtstreamStatusDialog';
        body.node.appendChild(pre);
        try {
          const status: unknown = await connection.getJSON('status');
          pre.textContent = JSON.stringify(status, null, 2);
        } catch (error) {
          pre.textContent = `Could not read rtstream/api/status: ${String(error)}`;
        }
        await showDialog({
          title: 'Real-time stream: server status',
          body,
          buttons: [Dialog.okButton()],
        });
      },
    });

    app.commands.addCommand(CommandIDs.monitor, {
      label: (args) =>
        args.isLauncher ? 'Market Monitor' : 'Real-time Stream: Open Market Monitor',
      caption: 'A live table of every instrument and the alerts feed',
      execute: () => {
        const existing = tracker.currentWidget ?? tracker.find(() => true);
        if (existing && !existing.isDisposed) {
          app.shell.activateById(existing.id);
          return existing;
        }
        const content = new MarketMonitor(connection, paintLog);
        const widget = new MainAreaWidget({ content });
        widget.id = 'rtstream-market-monitor-panel';
        widget.title.label = 'Market Monitor';
        widget.title.closable = true;
        void tracker.add(widget);
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        return widget;
      },
    });

    if (palette) {
      for (const command of [CommandIDs.reconnect, CommandIDs.status, CommandIDs.monitor]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
    if (launcher) {
      launcher.add({ command: CommandIDs.monitor, category: 'Other', rank: 1 });
    }
    if (restorer) {
      void restorer.restore(tracker, { command: CommandIDs.monitor, name: () => 'monitor' });
    }
    return connection;
  },
};

export default plugin;
