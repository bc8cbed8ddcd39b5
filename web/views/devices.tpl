% rebase('base.tpl')
% from web.format import when
% def err(name):
<p class="err" data-error-for="{{name}}"{{!'' if errors.get(name) else ' hidden'}}>{{errors.get(name, '')}}</p>
% end
% if not d['available']:
<section class="card"><p class="empty">This Hearth has no device registry, so devices cannot pair here yet.</p></section>
% else:
<section class="card">
  <h2>Waiting to pair</h2>
  % if not d['pending']:
  <p class="empty">No device is asking to pair. Start pairing on the device: it shows or says a short code.</p>
  % else:
  <p class="hint">Names come from the devices themselves and prove nothing. Pair a request by typing the code your own device shows or says.</p>
  <ul class="pending">
    % for p in d['pending']:
    % label = p.get('name') or 'New ' + (p.get('device_type') or 'device')
    <li data-request="{{p['id']}}">
      <span class="who">{{label}}
        <span class="hint">{{p.get('platform') or p.get('device_type')}} at <b class="addr">{{p.get('client_addr', '')}}</b> · asked {{when(p.get('created'))}}{{f" · {p['asked']} times" if p.get('asked', 1) > 1 else ''}}</span></span>
      <form method="post" action="/api/devices/confirm" data-api data-reload>
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="request" value="{{p['id']}}">
        <input name="code" required autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="12" placeholder="Code" aria-label="Code shown by {{label}} at {{p.get('client_addr', '')}}">
        <input name="room" placeholder="Room (optional)" aria-label="Room for {{label}}" maxlength="64">
        <button type="submit">Pair</button>
      </form>
      % err(f"{p['id']}.code")
    </li>
    % end
  </ul>
  % end
  <form method="post" action="/api/devices/confirm" data-api data-reload class="inline">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <div class="field">
      <label for="code">Code shown by the device</label>
      <input id="code" name="code" autocomplete="off" autocapitalize="characters" spellcheck="false" placeholder="e.g. K7Q2PX" value="{{values.get('code', '') if not values.get('request') else ''}}">
      % err('code')
    </div>
    <button type="submit">Confirm code</button>
  </form>
</section>

% w = d['wyoming']
% if w['enabled']:
<section class="card" id="wyoming">
  <h2>Home Assistant (Wyoming)</h2>
  <p class="hint">Wyoming has no login, so Hearth lets a client in by its address. Allow only addresses you know: an allowed client can use speech to text, text to speech and wake words.</p>
  % if w['waiting']:
  <ul class="pending wyoming-waiting">
    % for c in w['waiting']:
    <li data-address="{{c['address']}}">
      <span class="who"><span>A Wyoming client (such as Home Assistant) at <b class="addr">{{c['address']}}</b> wants speech</span>
        <span class="hint">{{'asked for ' + c['wants'].replace(',', ', ') + ' · ' if c.get('wants') else 'asked what Hearth offers · '}}first seen {{when(c.get('first_seen'))}}, last {{when(c.get('last_seen'))}}</span></span>
      <div class="actions">
        <form method="post" action="/api/wyoming/allow" data-api data-reload>
          <input type="hidden" name="csrf" value="{{csrf}}">
          <input type="hidden" name="address" value="{{c['address']}}">
          <button type="submit">Allow</button>
        </form>
        <form method="post" action="/api/wyoming/revoke" data-api data-reload>
          <input type="hidden" name="csrf" value="{{csrf}}">
          <input type="hidden" name="address" value="{{c['address']}}">
          <button type="submit" class="secondary">Dismiss</button>
        </form>
      </div>
      % err(f"wyoming.{c['address']}")
    </li>
    % end
  </ul>
  % else:
  <p class="empty">No Wyoming client is waiting. Add Hearth in Home Assistant (Wyoming Protocol, port {{w.get('port')}}); it shows up here.</p>
  % end
  % if w['allowed']:
  <ul class="pending wyoming-allowed">
    % for c in w['allowed']:
    <li data-address="{{c['address']}}">
      <span class="who"><b class="addr">{{c['address']}}</b> <span class="hint">allowed {{when(c.get('allowed_at'))}}</span></span>
      <form method="post" action="/api/wyoming/revoke" data-api data-reload data-confirm="Revoke {{c['address']}}? Its open connections are closed at once.">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="address" value="{{c['address']}}">
        <button type="submit" class="danger small">Revoke</button>
      </form>
      % err(f"wyoming.{c['address']}")
    </li>
    % end
  </ul>
  % end
  <form method="post" action="/api/wyoming/allow" data-api data-reload class="inline">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <div class="field">
      <label for="wyoming-address">Allow an address</label>
      <input id="wyoming-address" name="address" autocomplete="off" spellcheck="false" placeholder="e.g. 192.168.1.5" maxlength="64" value="{{values.get('address', '')}}">
      % err('address')
    </div>
    <button type="submit">Allow address</button>
  </form>
</section>
% end

<section class="card">
  <h2>Devices</h2>
  % if not d['devices']:
  <p class="empty">No devices yet.</p>
  % end
  % for dev in d['devices']:
  % did = dev.get('id') or dev.get('uuid') or dev.get('device')
  <article class="device" data-device="{{did}}">
    <header>
      <span class="dot {{'on' if dev.get('online') else 'off'}}" title="{{'online' if dev.get('online') else 'offline'}}"></span>
      <b>{{dev.get('name') or did}}</b>
      <span class="hint">{{'online' if dev.get('online') else 'offline, last seen ' + when(dev.get('last_seen'))}}</span>
    </header>
    <dl class="facts small">
      <dt>Room</dt><dd>{{dev.get('room') or '–'}}</dd>
      <dt>Type</dt><dd>{{dev.get('device_type') or dev.get('type') or '–'}}</dd>
      <dt>Firmware</dt><dd>{{dev.get('firmware') or dev.get('version') or '–'}}</dd>
    </dl>
    <details>
      <summary>Rename or move</summary>
      <form method="post" action="/api/devices/{{did}}" data-api data-reload class="row">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <div class="field"><label for="name-{{did}}">Name</label>
          <input id="name-{{did}}" name="name" value="{{dev.get('name') or ''}}" maxlength="64"></div>
        <div class="field"><label for="room-{{did}}">Room</label>
          <input id="room-{{did}}" name="room" value="{{dev.get('room') or ''}}" maxlength="64"></div>
        <button type="submit">Save</button>
      </form>
      % err(f'{did}.name')
      % err(f'{did}.room')
    </details>
    % st = dev.get('settings') or {}
    % if st:
    <details>
      <summary>Device settings</summary>
      <form method="post" action="/api/devices/{{did}}/settings" data-api data-reload>
        <input type="hidden" name="csrf" value="{{csrf}}">
        <div class="row">
          % for key, label, options in (('language', 'Language', languages), ('wake_word', 'Wake word', {w: w.replace('_', ' ') for w in wake_words}), ('voice', 'Voice', {v: v for v in voices}), ('units', 'Units', {'metric': 'metric', 'imperial': 'imperial'}), ('time_format', 'Clock', {'24h': '24 hour', '12h': '12 hour'})):
          <div class="field">
            <label for="s-{{did}}-{{key}}">{{label}}</label>
            <select id="s-{{did}}-{{key}}" name="{{key}}">
              % if st.get(key) not in options:
              <option value="{{st.get(key)}}" selected>{{st.get(key)}}</option>
              % end
              % for value, text in options.items():
              <option value="{{value}}"{{!' selected' if value == st.get(key) else ''}}>{{text}}</option>
              % end
            </select>
          </div>
          % end
          % loc = st.get('location') or {}
          <div class="field">
            <label for="s-{{did}}-place">Place name</label>
            <input id="s-{{did}}-place" name="location.name" value="{{loc.get('name', '')}}" maxlength="100">
          </div>
          <div class="field">
            <label for="s-{{did}}-tz">Time zone</label>
            <input id="s-{{did}}-tz" name="location.timezone" value="{{loc.get('timezone', 'UTC')}}" placeholder="Europe/Oslo">
          </div>
        </div>
        <button type="submit">Save settings</button>
      </form>
      % err(f'{did}.settings')
    </details>
    % end
    <form method="post" action="/api/devices/{{did}}/revoke" data-api data-reload data-confirm="Remove {{dev.get('name') or did}}? It will have to pair again.">
      <input type="hidden" name="csrf" value="{{csrf}}">
      <button type="submit" class="danger small">Remove device</button>
      % err(f'{did}.revoke')
    </form>
  </article>
  % end
</section>
% end
