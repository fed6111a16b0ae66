/** The edgebench JupyterLab plugin: an "Edge" panel in the left area, refreshed from the server. */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { LabIcon } from '@jupyterlab/ui-components';

import { EdgeModel } from './model';
import { EdgePanel } from './panel';
import { makeRequester } from './request';

const edgeIcon = new LabIcon({
  name: 'edgebench:edge',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<rect class="jp-icon3" fill="#616161" x="4" y="4" width="16" height="16" rx="2"/>' +
    '<rect fill="#ffffff" x="8" y="8" width="8" height="8"/>' +
    '<path class="jp-icon3" fill="#616161" d="M9 1h2v3H9zM13 1h2v3h-2zM9 20h2v3H9zM13 20h2v3h-2zM1 9h3v2H1zM1 13h3v2H1zM20 9h3v2h-3zM20 13h3v2h-3z"/>' +
    '</svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'edgebench:plugin',
  description: 'Ship models trained in Jupyter to edge devices.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    const model = new EdgeModel(makeRequester());
    const panel = new EdgePanel(model);
    panel.title.icon = edgeIcon;
    app.shell.add(panel, 'left', { rank: 300 });
    app.commands.addCommand('edgebench:open', {
      label: 'Open the Edge panel',
      execute: () => app.shell.activateById(panel.id)
    });
    model.startPolling();
  }
};

export default plugin;
