/** The edgebench JupyterLab plugin: the "Edge" index in the left area, a model dashboard in the main area, a
 * command for each (in the palette), and a notification when a step ends. */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';

import { EdgeDashboard } from './dashboard';
import { EdgeModel, runMessage } from './model';
import { EdgePanel } from './panel';
import { makeRequester } from './request';

const edgeIcon = new LabIcon({
  name: 'edgebench:edge',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<rect class="jp-icon3" fill="#616161" x="4" y="4" width="16" height="16" rx="2"/>' +
    '<rect class="jp-icon-contrast0" fill="#ffffff" x="8" y="8" width="8" height="8"/>' +
    '<path class="jp-icon3" fill="#616161" d="M9 1h2v3H9zM13 1h2v3h-2zM9 20h2v3H9zM13 20h2v3h-2zM1 9h3v2H1zM1 13h3v2H1zM20 9h3v2h-3zM20 13h3v2h-3z"/>' +
    '</svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'edgebench:plugin',
  description: 'Ship models trained in Jupyter to edge devices.',
  autoStart: true,
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null) => {
    const model = new EdgeModel(makeRequester());
    let dashboard: EdgeDashboard | null = null;
    const openDashboard = (name?: string) => {
      if (name && name !== model.selected) {
        void model.select(name);
      }
      if (!dashboard || dashboard.isDisposed) {
        dashboard = new EdgeDashboard(model);
        dashboard.title.icon = edgeIcon;
        app.shell.add(dashboard, 'main');
      }
      app.shell.activateById(dashboard.id);
    };
    const panel = new EdgePanel(model, name => openDashboard(name));
    panel.title.icon = edgeIcon;
    app.shell.add(panel, 'left', { rank: 300 });
    app.commands.addCommand('edgebench:open', {
      label: 'Open the Edge panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand('edgebench:dashboard', {
      label: 'Open the edge model dashboard',
      execute: args => openDashboard((args.name as string | undefined) ?? model.selected ?? model.models[0]?.name)
    });
    for (const command of ['edgebench:open', 'edgebench:dashboard']) {
      palette?.addItem({ command, category: 'Edge' });
    }
    model.runEnded.connect((_, run) => {
      const { kind, text } = runMessage(run);
      Notification[kind](text, { autoClose: kind === 'error' ? false : 5000 });
    });
    model.startPolling();
  }
};

export default plugin;
