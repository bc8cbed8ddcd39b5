% rebase('base.tpl')
% from web.format import size, when
% def err(name):
<p class="err" data-error-for="{{name}}"{{!'' if errors.get(name) else ' hidden'}}>{{errors.get(name, '')}}</p>
% end
% if not u['available']:
<section class="card">
  <h2>Firmware</h2>
  <p class="empty">This Hearth has no firmware cache, so there are no device images to show, import or update.</p>
</section>
% else:
<section class="card">
  <h2>Cached firmware</h2>
  % if not any(t['releases'] for t in u['types']):
  <p class="empty">No firmware images are cached yet. Import them from a folder or USB stick below, or set
  the upstream manifest address so Hearth fetches them once for every device.</p>
  % end
  % if u['types']:
  <p class="hint">{{size(u['used_bytes'])}} used of {{size(u['quota_bytes'])}}.</p>
  % for t in u['types']:
  <h3>{{t['device_type']}}</h3>
  % if not t['releases']:
  <p class="empty">No images for this device type yet.</p>
  % else:
  <div class="table-wrap"><table>
    <thead><tr><th>Version</th><th>Channel</th><th>State</th><th>Size</th><th>Devices</th></tr></thead>
    <tbody>
    % for r in t['releases']:
    % on = [d['device'] for d in t['devices'] if d.get('version') == r['version']]
    <tr><td>{{r['version']}}</td><td>{{r['channel']}}</td><td>{{r['state']}}{{(': ' + r['error']) if r.get('error') else ''}}</td>
        <td>{{size(r['size'])}}</td><td>{{', '.join(on) if on else '–'}}</td></tr>
    % end
    </tbody>
  </table></div>
  % end
  % others = [d for d in t['devices'] if d.get('version') not in {r['version'] for r in t['releases']}]
  % if others:
  <p class="hint">Running other versions: {{', '.join(f"{d['device']} ({d.get('version') or 'unknown'})" for d in others)}}</p>
  % end
  % end
  % end
</section>
<form method="post" action="/api/updates/import" data-api data-reload class="card">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <h2>Import from a folder or USB stick</h2>
  <div class="field">
    <label for="folder">Folder on this box</label>
    <input id="folder" name="folder" placeholder="/media/usb" value="{{values.get('folder', '')}}">
    <p class="hint">Hearth reads every manifest and image in it and keeps the ones whose checksum and signature are right.</p>
    % err('folder')
  </div>
  <button type="submit">Import</button>
</form>
% if u['manifest_url'] is not None:
<form method="post" action="/api/updates/manifest" data-api class="card">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <h2>Upstream manifest</h2>
  <div class="field">
    <label for="manifest">Manifest address</label>
    <input id="manifest" name="manifest_url" type="url" placeholder="https://example.com/firmware/{type}/{channel}.json" value="{{values.get('manifest_url', u['manifest_url'])}}">
    <p class="hint">{type} and {channel} are filled in per device type. Empty: import only, Hearth never goes online for firmware.</p>
    % err('manifest_url')
  </div>
  <button type="submit">Save address</button>
</form>
% end
% end
