% rebase('base.tpl')
% from web.format import size
% def err(name):
<p class="err" data-error-for="{{name}}"{{!'' if errors.get(name) else ' hidden'}}>{{errors.get(name, '')}}</p>
% end
<form method="post" action="/api/privacy" data-api class="card">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <h2>Household training data</h2>
  <p>Hearth can keep what it heard (the audio and the words it understood) on this box, to improve
  recognition for your household later. It never leaves the box unless you export it. <strong>Off by default.</strong></p>
  <div class="field check">
    <input type="hidden" name="store_utterances" value="off">
    <input id="store" name="store_utterances" type="checkbox" value="on"{{!' checked' if p['store_utterances'] in (True, 'on', 'true') else ''}}>
    <label for="store">Store what devices hear</label>
    % err('store_utterances')
  </div>
  <div class="field">
    <label for="retention">Keep for (days)</label>
    <input id="retention" name="retention_days" type="number" min="1" max="3650" value="{{p['retention_days']}}" inputmode="numeric">
    <p class="hint">Older recordings are deleted automatically. 1–3650.</p>
    % err('retention_days')
  </div>
  <button type="submit">Save privacy settings</button>
</form>

<section class="card">
  <h2>Stored now</h2>
  % st = p['stored']
  % if not st['utterances']:
  <p class="empty">Nothing is stored.</p>
  % else:
  <p>{{st['utterances']}} utterance(s), {{size(st['bytes'])}}, from {{st['oldest']}} to {{st['newest']}}.</p>
  <ul class="log">
    % for r in recent:
    <li><time>{{r.get('time', '')}}</time> <b>{{r.get('device', '')}}</b> “{{r.get('text', '')}}”</li>
    % end
  </ul>
  % end
  <div class="actions">
    <form method="post" action="/api/privacy/delete" data-api data-confirm="Delete every stored utterance? This cannot be undone." data-reload>
      <input type="hidden" name="csrf" value="{{csrf}}">
      <button type="submit" class="danger">Delete all</button>
    </form>
  </div>
</section>

% include('heard.tpl')
% include('privacy_data.tpl')
