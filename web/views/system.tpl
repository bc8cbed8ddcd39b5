% rebase('base.tpl')
% import time
% def err(name):
<p class="err" data-error-for="{{name}}"{{!'' if errors.get(name) else ' hidden'}}>{{errors.get(name, '')}}</p>
% end
<section class="card">
  <h2>Backup and restore</h2>
  <p>One file with the configuration and the device registry. Keep it somewhere safe: it lets the
  paired devices back in after a reinstall.</p>
  <div class="actions">
    <a class="button" href="/api/system/backup" download>Download backup</a>
  </div>
  <form method="post" action="/api/system/restore" enctype="multipart/form-data" data-api data-confirm="Replace the configuration and device registry with this backup?" class="restore">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <div class="field">
      <label for="backup">Restore from a backup file</label>
      <input id="backup" name="backup" type="file" accept=".gz,.tgz,application/gzip">
      % err('backup')
    </div>
    <button type="submit" class="secondary">Restore</button>
  </form>
</section>

<section class="card">
  <h2>Support bundle</h2>
  <p>One file for whoever helps you: versions, configuration, health, metrics, recent errors and
  log lines, the device list, the broker and the disk. No passwords, tokens, keys or stored
  utterances are inside (README.txt in the file lists what is).</p>
  <div class="actions">
    <a class="button" href="/api/system/support-bundle" download>Download support bundle</a>
  </div>
</section>

<section class="card">
  <h2>Restart</h2>
  <p>Restarts the speech service and the broker. Devices reconnect by themselves within seconds.</p>
  <form method="post" action="/api/system/restart" data-api data-confirm="Restart Hearth now?" data-restart>
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" class="danger"{{!'' if restartable else ' disabled'}}>Restart Hearth</button>
    % if not restartable:
    <p class="hint">This Hearth was started by another program (for example a test), which must restart it.</p>
    % end
    % err('restart')
  </form>
</section>

<section class="card">
  <h2>Recent log</h2>
  % if not logs:
  <p class="empty">No log lines yet.</p>
  % else:
  <ol class="log mono" reversed>
    % for line in reversed(logs):
    <li class="lvl-{{line['level'].lower()}}"><time>{{time.strftime('%H:%M:%S', time.localtime(line['time']))}}</time> <b>{{line['level']}}</b> {{line['logger']}}: {{line['text'].split(': ', 1)[-1] if ': ' in line['text'] else line['text']}}</li>
    % end
  </ol>
  % end
</section>
