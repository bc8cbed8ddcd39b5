% rebase('base.tpl')
% from web.format import size, duration, when
% sysf = f['system']
% st = f['storage']
% for r in st['registry']['repairs']:
<div class="banner-error" role="alert">Registry restored from a snapshot on {{when(r['time'])}}: {{r['text']}}.
  Devices paired or settings changed after that snapshot must be done again. The damaged file is kept.</div>
% end
% lost = st['registry']['lost']
% if lost['text']:
<div class="banner-error" role="alert" id="lost-devices">{{lost['text']}}. The broker still knew them after
  the registry was repaired ({{lost['reason']}}).
  <form method="post" action="/api/overview/lost/acknowledge" data-api data-reload>
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" id="acknowledge-lost">I have seen this: stop reporting them</button>
  </form></div>
% end
% if not st['registry']['ok']:
<div class="banner-error" role="alert">The registry database {{st['registry']['file']}} failed SQLite's check
  ({{st['registry']['problem']}}). Restart Hearth (System page) to restore the newest good snapshot, or download a backup now.</div>
% end
% if st['disk']['reason']:
<div class="banner-error" role="alert">{{st['disk']['reason']}}. Free space on the data disk (old stored
  utterances on the Privacy page, firmware images on the Updates page).</div>
% end
<section class="grid">
  <div class="card stat">
    <h2>Broker</h2>
    <p class="big {{'ok' if f['broker']['connected'] else 'bad'}}">{{'Up' if f['broker']['connected'] else 'Down'}}</p>
    <p class="hint">MQTT on port {{f['broker']['port']}}</p>
  </div>
  <div class="card stat">
    <h2>Devices</h2>
    % if f['devices'] is None:
    <p class="big">–</p><p class="hint">No device registry in this build</p>
    % else:
    <p class="big">{{f['devices']['online']}} <small>of {{f['devices']['total']}} online</small></p>
    <p class="hint">{{f['devices']['pending']}} waiting to pair</p>
    % end
  </div>
  <div class="card stat">
    <h2>Speech queue</h2>
    <p class="big">{{f['queue']['depth']}}</p>
    <p class="hint">{{f['queue']['sessions_open']}} listening now</p>
  </div>
  <div class="card stat">
    <h2>Uptime</h2>
    <p class="big">{{duration(f['service']['uptime_s'])}}</p>
    <p class="hint">Hearth {{f['service']['version']}} · box up {{duration(sysf['uptime_s'])}}</p>
  </div>
</section>

<section class="card">
  <h2>Speech engines</h2>
  <dl class="facts">
    <dt>Speech to text</dt><dd>{{f['stt']['engine']}} <span class="hint">{{f['stt']['model']}}</span></dd>
    <dt>Language</dt><dd>{{f['stt']['language']}}</dd>
    <dt>Voice</dt><dd>{{f['tts']['voice']}} <span class="hint">({{len(f['tts']['voices'])}} installed)</span></dd>
    <dt>Wake word</dt><dd>{{f['wake']['model']}} <span class="hint">{{f['wake']['engine']}}{{', for streaming satellites' if f['wake']['loaded'] else ', not loaded'}}</span></dd>
    % if f['wake']['lag_ms'] is not None:
    <dt>Wake lag</dt><dd id="wake-lag" class="{{'bad' if f['wake']['lag_peak_ms'] > 500 else ''}}">{{f['wake']['lag_ms']}} ms <span class="hint">peak {{f['wake']['lag_peak_ms']}} ms in 10 s, {{f['wake']['streams']}} satellite stream(s); over 500 ms new streams get busy</span></dd>
    % end
  </dl>
</section>

% wr = f['wake_review']
% if wr['devices']:
<section class="card" id="wake-review-counts">
  <h2>Wake word review</h2>
  <div class="table-wrap"><table>
    <thead><tr><th>Device</th><th>False wakes</th><th>Missed wakes</th><th>To review</th></tr></thead>
    <tbody>
    % for device, c in wr['devices'].items():
    <tr data-device="{{device}}"><td>{{device}}</td><td class="false-wake">{{c['false_wake']}}</td><td class="missed-wake">{{c['missed_wake']}}</td>
      <td><a href="/privacy?device={{device}}&amp;mark=#wake-review">{{c['unmarked']}}</a> <span class="hint">of {{c['no_command'] + c['no_detection']}} clip(s)</span></td></tr>
    % end
    </tbody>
  </table></div>
</section>
% end

<section class="card">
  <h2>Helpers</h2>
  % if not f['helpers']:
  <p class="empty">No helpers. Another machine lends its engine with <code>hearth helper join</code> (docs/helpers.md).</p>
  % else:
  <table>
    <thead><tr><th>Helper</th><th>Online</th><th>Model</th><th>Jobs done</th><th>Mean time</th></tr></thead>
    <tbody>
    % for h in f['helpers']:
    <tr><td>{{h['name']}} <span class="hint">{{h['id']}}</span></td>
      <td class="{{'ok' if h['online'] else 'bad'}}">{{'yes' if h['online'] else 'no'}}{{(' — ' + h['problem']) if h['problem'] else ''}}</td>
      <td>{{', '.join(h['models']) or '–'}} <span class="hint">{{h['device']}}</span></td>
      <td>{{h['jobs']}}{{(' (%d late, %d ignored)' % (h['late'], h['ignored'])) if h['late'] or h['ignored'] else ''}}</td>
      <td>{{('%.0f ms' % h['mean_ms']) if h['mean_ms'] is not None else '–'}}</td></tr>
    % if h['flagged']:
    <tr class="flagged"><td colspan="5"><span class="bad">Answered {{h['not_given']}} times for jobs sent to others</span>
      (ignored: only the helper a job was sent to is believed). A helper of yours should never do this.
      <form method="post" action="/api/devices/{{h['id']}}/revoke" data-api data-reload data-confirm="Revoke helper {{h['name'] or h['id']}}? Its login stops working at once.">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <button type="submit" class="danger small">Revoke {{h['name'] or h['id']}}</button>
      </form></td></tr>
    % end
    % end
    </tbody>
  </table>
  % end
</section>

<section class="card">
  <h2>Machine</h2>
  <dl class="facts">
    <dt>CPU</dt><dd>{{sysf['cpu_percent']}} % <span class="hint">{{sysf['cpus']}} cores, load {{' / '.join(str(x) for x in sysf['load'])}}</span></dd>
    <dt>Memory</dt><dd><meter min="0" max="100" value="{{sysf['memory']['percent']}}"></meter> {{size(sysf['memory']['used'])}} of {{size(sysf['memory']['total'])}}</dd>
    <dt>Disk</dt><dd><meter min="0" max="100" value="{{sysf['disk']['percent']}}"></meter> {{size(sysf['disk']['used'])}} of {{size(sysf['disk']['total'])}}</dd>
    <dt>Data disk</dt><dd>{{size(st['disk']['free_bytes'])}} free <span class="hint">{{st['disk']['path']}}; reserve {{size(st['disk']['reserve_bytes'])}}</span></dd>
    % snap = st['registry']['last_snapshot']
    <dt>Registry</dt><dd>{{'checked' if st['registry']['ok'] else 'DAMAGED'}} <span class="hint">{{('last snapshot ' + when(snap['time']) + ', ' + str(snap['devices']) + ' devices') if snap else 'no snapshot yet'}}{{('; snapshot failed: ' + st['registry']['snapshot_error']) if st['registry']['snapshot_error'] else ''}}</span></dd>
    <dt>Temperature</dt><dd>{{'%.0f °C' % sysf['temperature_c'] if sysf['temperature_c'] is not None else 'no sensor on this machine'}}</dd>
  </dl>
</section>

<section class="card">
  <h2>Last errors</h2>
  % if not f['errors']:
  <p class="empty">No errors since Hearth started.</p>
  % else:
  <ul class="log">
    % for e in f['errors']:
    <li><time>{{when(e['time'])}}</time> {{e['text']}}</li>
    % end
  </ul>
  % end
</section>
