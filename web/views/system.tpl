% rebase('base.tpl')
% import time
% def err(name):
<p class="err" data-error-for="{{name}}"{{!'' if errors.get(name) else ' hidden'}}>{{errors.get(name, '')}}</p>
% end
<section class="card" id="update">
  <h2>Software update</h2>
  % if not update['available']:
  <p class="empty" id="update-unavailable">{{update['reason']}}. On the appliance this card shows both system slots and takes signed update bundles.</p>
  % else:
  % if update['reason']:
  <p class="err">{{update['reason']}}</p>
  % end
  <dl class="facts slots">
    % for slot in update['slots']:
    <dt>Slot {{slot['bootname']}}</dt>
    <dd data-slot="{{slot['bootname']}}">{{slot['version'] or 'version unknown'}} · {{'running now' if slot['state'] == 'booted' else 'not running'}}{{' · boots next' if update['primary'] in (slot['name'], slot['bootname']) else ''}} · {{('marked ' + slot['boot_status']) if slot['boot_status'] else 'boot state unknown'}}</dd>
    % end
    <dt>Last update</dt>
    % last = update['last']
    <dd id="update-last" class="{{'bad' if last and last['result'] in ('failed', 'rolled_back') else ''}}">{{last['message'] if last else 'none yet'}}</dd>
  </dl>
  <form method="post" action="/api/system/update/channel" data-api data-reload id="update-channel" class="restore">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <div class="field">
      <label for="channel">Release channel</label>
      <select id="channel" name="channel">
        % for name, label in (('stable', 'stable: tested releases'), ('beta', 'beta: new releases first')):
        <option value="{{name}}"{{!' selected' if name == update['channel'] else ''}}>{{label}}</option>
        % end
      </select>
      <p class="hint">Which Hearth releases the firmware cache offers this box. Beta gets new releases before everyone else (stable while beta has none); back on stable, the box is offered the stable release again.</p>
      % err('channel')
    </div>
    <button type="submit" class="secondary">Save channel</button>
  </form>
  % offer = update['offer']
  % if offer and offer['state'] == 'ready':
  <form method="post" action="/api/system/update/cached" data-api data-reload data-confirm="Install {{offer['version']}} into the other slot?" class="restore">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <input type="hidden" name="version" value="{{offer['version']}}">
    <p>The firmware cache brought {{offer['version']}} ({{offer['channel']}}, {{offer['message']}}).</p>
    <button type="submit" id="update-cached">Install update {{offer['version']}} from the cache</button>
  </form>
  % elif offer:
  <p class="hint" id="update-offer">From the firmware cache: {{offer['version']}} {{offer['state']}}{{': ' + offer['message'] if offer['message'] else ''}}</p>
  % end
  <form method="post" action="/api/system/update/upload" enctype="application/octet-stream" id="update-upload" class="restore">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <div class="field">
      <label for="bundle">Install an update bundle (.raucb)</label>
      <input id="bundle" name="bundle" type="file" accept=".raucb">
      <p class="hint">Only bundles signed with this box's key are installed. The running system is never touched: the bundle goes to the other slot, and the box comes back to this one by itself if the new one does not become healthy.</p>
      % err('bundle')
    </div>
    <progress id="update-progress" max="100" value="0" hidden></progress>
    <p class="hint" id="update-step" hidden></p>
    <noscript><p class="hint">Uploading needs JavaScript; without it, copy the bundle to a USB stick and run <code>hearth update install FILE</code> on the box.</p></noscript>
    <button type="submit">Upload and install</button>
  </form>
  % waiting = bool(last and last['result'] == 'installed' and last.get('boot_id') == boot_id)
  <form method="post" action="/api/system/update/reboot" data-api data-restart data-confirm="Reboot into the new version now?" id="update-reboot" class="restore"{{!'' if waiting else ' hidden'}}>
    <input type="hidden" name="csrf" value="{{csrf}}">
    <p>The update is installed. It starts after a reboot.</p>
    <button type="submit" class="danger">Reboot now</button>
  </form>
  <script src="/static/update.js" defer></script>
  % end
</section>

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
