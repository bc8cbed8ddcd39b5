% from web.format import size
% w = wake
<section class="card" id="datasets">
  <h2>Datasets from other households</h2>
  <p>Import recordings another household or a community shares (a zip, or a folder on a USB stick: <code>metadata.csv</code>,
  WAV files and <code>SHA256SUMS</code>). Everything is checked before anything is kept; they stay apart from your own
  recordings and are used to measure how well Hearth hears.</p>
  % if datasets:
  <ul class="log">
    % for d in datasets:
    <li><b>{{d['name']}}</b> {{d.get('rows', '?')}} utterance(s), {{'%.0f' % d.get('audio_s', 0)}} s, {{size(d.get('bytes', 0))}}
      <span class="hint">from {{d.get('source', '?')}}, {{d.get('imported', '')}}</span>
      <form method="post" action="/api/privacy/datasets/remove" data-api data-reload class="inline"
            data-confirm="Delete the dataset {{d['name']}}?">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="name" value="{{d['name']}}">
        <button type="submit" class="secondary">Remove</button>
      </form></li>
    % end
  </ul>
  % else:
  <p class="empty">No datasets imported.</p>
  % end
  <form method="post" action="/api/privacy/datasets/import" data-api data-reload id="dataset-import">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <div class="field">
      <label for="dataset-path">Zip file or folder on the box</label>
      <input id="dataset-path" name="path" type="text" placeholder="/media/usb/neighbours.zip" autocomplete="off"
             value="{{p.get('path', '')}}">
      <p class="err" data-error-for="path"{{!'' if errors.get('path') else ' hidden'}}>{{errors.get('path', '')}}</p>
    </div>
    <div class="field">
      <label for="dataset-name">Name (optional)</label>
      <input id="dataset-name" name="name" type="text" pattern="[a-z0-9][a-z0-9_-]*" maxlength="64" value="{{p.get('name', '')}}">
    </div>
    <button type="submit">Import dataset</button>
  </form>
</section>

<section class="card" id="wake-review">
  <h2>Wake word review</h2>
  <p>Hearth can keep a few seconds of audio when the wake word was heard and no command followed, and when a
  satellite's command began without it, so you can say which were mistakes. <strong>Off by default.</strong></p>
  <form method="post" action="/api/privacy" data-api data-reload>
    <input type="hidden" name="csrf" value="{{csrf}}">
    <div class="field check">
      <input type="hidden" name="store_wake_clips" value="off">
      <input id="store-wake" name="store_wake_clips" type="checkbox" value="on"{{!' checked' if w['on'] else ''}}>
      <label for="store-wake">Keep wake word clips</label>
    </div>
    <button type="submit">Save</button>
  </form>
  % if w['counts']:
  <div class="table-wrap"><table id="wake-counts">
    <thead><tr><th>Device</th><th>False wakes</th><th>Missed wakes</th><th>To review</th></tr></thead>
    <tbody>
    % for device, c in w['counts'].items():
    <tr><td>{{device}}</td><td>{{c['false_wake']}} <span class="hint">of {{c['no_command']}} without a command</span></td>
      <td>{{c['missed_wake']}} <span class="hint">of {{c['no_detection']}} without the wake word</span></td><td>{{c['unmarked']}}</td></tr>
    % end
    </tbody>
  </table></div>
  <form method="get" action="/privacy#wake-review" class="row">
    <div class="field"><label for="wake-device">Device</label>
      <select id="wake-device" name="device"><option value="">all</option>
      % for device in w['counts']:
      <option{{!' selected' if device == w['filter']['device'] else ''}}>{{device}}</option>
      % end
      </select></div>
    <div class="field"><label for="wake-kind">Kind</label>
      <select id="wake-kind" name="kind"><option value="">all</option>
      % for kind in w['kinds']:
      <option value="{{kind}}"{{!' selected' if kind == w['filter']['kind'] else ''}}>{{kind.replace('_', ' ')}}</option>
      % end
      </select></div>
    <div class="field"><label for="wake-mark">State</label>
      <select id="wake-mark" name="mark">
      % for value, label in (('any', 'all'), ('', 'to review'), ('false_wake', 'false wake'), ('missed_wake', 'missed wake'), ('fine', 'fine')):
      <option value="{{value}}"{{!' selected' if value == w['filter']['mark'] else ''}}>{{label}}</option>
      % end
      </select></div>
    <button type="submit" class="secondary">Show</button>
  </form>
  <ul class="log" id="wake-clips">
    % for c in w['clips']:
    <li data-clip="{{c['id']}}"><time>{{c['time']}}</time> <b>{{c['device']}}</b> {{c['kind'].replace('_', ' ')}}
      {{('“' + c['text'] + '”') if c['text'] else ''}} <span class="hint">{{c['mark'].replace('_', ' ') or 'to review'}}</span>
      <audio controls preload="none" src="/api/privacy/wake/{{c['id']}}.wav"></audio>
      % for m in w['kinds'][c['kind']]:
      <form method="post" action="/api/privacy/wake/mark" data-api data-reload class="inline">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="clip" value="{{c['id']}}">
        <input type="hidden" name="mark" value="{{m}}">
        <button type="submit" class="{{'secondary' if m == 'fine' else ''}}">{{m.replace('_', ' ')}}</button>
      </form>
      % end
    </li>
    % end
  </ul>
  <form method="post" action="/api/privacy/wake/delete" data-api data-reload class="inline"
        data-confirm="Delete every wake word clip? This cannot be undone.">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" class="danger">Delete all clips</button>
  </form>
  % elif w['on']:
  <p class="empty">Nothing to review yet.</p>
  % end
</section>
