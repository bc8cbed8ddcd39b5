% # "What Hearth heard": included by privacy.tpl; `heard` is web/review_routes.listing()
% h = heard
% f = h['filter']
% shown = p['store_utterances'] in (True, 'on', 'true') or h['counts']['unreviewed'] + h['counts']['right'] + h['counts']['wrong']
% if shown:
<section class="card" id="heard" aria-labelledby="heard-title">
  <h2 id="heard-title">What Hearth heard</h2>
  <p class="hint">Listen, say whether Hearth got it right, correct what it got wrong. Only what you mark and
  allow goes into an export. {{h['counts']['unreviewed']}} not reviewed · {{h['counts']['right']}} right ·
  {{h['counts']['wrong']}} wrong · {{h['counts']['allowed']}} allowed for export.</p>
  <form method="get" action="/privacy#heard" class="filters">
    <div class="field">
      <label for="f-device">Device</label>
      <select id="f-device" name="device">
        <option value="">All devices</option>
        % for d in h['devices']:
        <option value="{{d['id']}}"{{!' selected' if d['id'] == f['device'] else ''}}>{{d['name']}}</option>
        % end
      </select>
    </div>
    <div class="field">
      <label for="f-day">Day</label>
      <select id="f-day" name="day">
        <option value="">All days</option>
        % for day in h['days']:
        <option value="{{day}}"{{!' selected' if day == f['day'] else ''}}>{{day}}</option>
        % end
      </select>
    </div>
    <div class="field">
      <label for="f-state">State</label>
      <select id="f-state" name="state">
        % for value, label in (('', 'Any'), ('unreviewed', 'Not reviewed'), ('right', 'Right'), ('wrong', 'Wrong'), ('allowed', 'Allowed for export')):
        <option value="{{value}}"{{!' selected' if value == f['state'] else ''}}>{{label}}</option>
        % end
      </select>
    </div>
    <button type="submit" class="secondary">Show</button>
  </form>
  % for name in ('state', 'corrected', 'consent'):
  % if errors.get(name):
  <p class="err" role="alert">{{errors[name]}}</p>
  % end
  % end
  % if h.get('problem'):
  <p class="err">{{h['problem']}}: showing everything.</p>
  % end
  % if not h['utterances']:
  <p class="empty">{{'Nothing stored matches.' if h['total'] == 0 and (f['device'] or f['day'] or f['state']) else 'Nothing stored yet: speak to a device.'}}</p>
  % end
  <ol class="heard-list">
  % for i, u in enumerate(h['utterances']):
    % uid = u['id']
    % label = {'unreviewed': 'not reviewed', 'right': 'right', 'wrong': 'wrong'}[u['state']]
    <li class="heard-item" data-id="{{uid}}" data-state="{{u['state']}}">
      <p class="heard-who"><b>{{u['device_name']}}</b>{{' · ' + u['room'] if u['room'] else ''}} · <time datetime="{{u['time']}}">{{u['time'].replace('T', ' ')}}</time></p>
      <p class="heard-text">“{{u['text']}}”</p>
      <p class="hint">{{u['engine']}}{{' · ' + u['model'] if u['model'] else ''}} · {{u['audio_s']}} s ·
        <span class="state" data-state="{{u['state']}}">{{label}}</span> ·
        <span class="consent">{{('allowed for export by ' + u['consent']['by'] + ' at ' + u['consent']['at']) if u['consent'] else 'not allowed for export'}}</span></p>
      <audio controls preload="none" src="/api/privacy/utterances/{{uid}}/audio" aria-label="Play what {{u['device_name']}} heard at {{u['time']}}"></audio>
      <form method="post" action="/api/privacy/utterances/{{uid}}/review" data-heard class="heard-review">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <label for="corrected-{{i}}">What was said (if Hearth got it wrong)</label>
        <textarea id="corrected-{{i}}" name="corrected" rows="2" maxlength="2000" placeholder="{{u['text']}}">{{u['corrected']}}</textarea>
        <p class="err" data-heard-error hidden></p>
        <p class="hint offered"{{!'' if u['offered'] else ' hidden'}}>Hearth did not know: <span>{{', '.join(u['offered'])}}</span> · <a href="/voice#offers">add to the household words</a></p>
        <div class="actions">
          <button type="submit" name="state" value="right" class="small">Right</button>
          <button type="submit" name="state" value="wrong" class="small secondary">Wrong (save correction)</button>
        </div>
      </form>
      <div class="actions">
        <form method="post" action="/api/privacy/utterances/{{uid}}/consent" data-heard>
          <input type="hidden" name="csrf" value="{{csrf}}">
          <input type="hidden" name="allow" value="{{'off' if u['consent'] else 'on'}}">
          <button type="submit" class="small secondary consent-button">{{'Withdraw export' if u['consent'] else 'Allow export'}}</button>
        </form>
        <form method="post" action="/api/privacy/utterances/{{uid}}/delete" data-heard data-remove>
          <input type="hidden" name="csrf" value="{{csrf}}">
          <button type="submit" class="small danger">Delete</button>
        </form>
      </div>
    </li>
  % end
  </ol>
  % if h['total'] > h['limit']:
  % from urllib.parse import urlencode
  % q = {k: v for k, v in f.items() if v}
  <nav class="actions" aria-label="More of what Hearth heard">
    <span class="hint">{{h['offset'] + 1}}–{{h['offset'] + len(h['utterances'])}} of {{h['total']}}</span>
    % if h['offset'] > 0:
    <a class="button secondary small" href="/privacy?{{urlencode({**q, 'offset': max(0, h['offset'] - h['limit'])})}}#heard">Newer</a>
    % end
    % if h['offset'] + h['limit'] < h['total']:
    <a class="button secondary small" href="/privacy?{{urlencode({**q, 'offset': h['offset'] + h['limit']})}}#heard">Older</a>
    % end
  </nav>
  % end
  <div class="actions">
    <a class="button" href="/api/privacy/export" download>Export the {{h['counts']['allowed']}} allowed (dataset zip)</a>
    <p class="hint">A folder with <code>metadata.csv</code> and the WAV files (the “audiofolder” layout speech tools read), holding only what you reviewed and allowed, with who allowed it and when.</p>
  </div>
</section>
<script src="/static/review.js" defer></script>
% end
