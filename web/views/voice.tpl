% rebase('base.tpl')
% def err(name):
<p class="err" data-error-for="{{name}}"{{!'' if errors.get(name) else ' hidden'}}>{{errors.get(name, '')}}</p>
% end
<form method="post" action="/api/voice" data-api class="card">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <h2>Hearing</h2>
  <div class="row">
    <div class="field">
      <label for="stt-engine">Speech-to-text engine</label>
      <select id="stt-engine" name="stt.engine">
        % for e in choices['stt.engine']:
        <option value="{{e}}"{{!' selected' if e == v['stt.engine'] else ''}}>{{e}}</option>
        % end
      </select>
      <p class="hint">Running now: {{v['stt.running']}} · changing it needs a restart</p>
      % err('stt.engine')
    </div>
    <div class="field">
      <label for="stt-language">Language</label>
      <select id="stt-language" name="stt.language">
        % for code, label in choices['stt.language'].items():
        <option value="{{code}}"{{!' selected' if code == v['stt.language'] else ''}}>{{label}}</option>
        % end
      </select>
      % err('stt.language')
    </div>
  </div>
  <div class="row">
    <div class="field">
      <label for="stt-model">Model</label>
      <select id="stt-model" name="stt.model">
        % for m in choices['stt.model']:
        <option value="{{m}}"{{!' selected' if m == v['stt.model'] else ''}}>{{'auto: the box chooses' if m == 'auto' else m}}</option>
        % end
        % if v['stt.model'] not in choices['stt.model']:
        <option value="{{v['stt.model']}}" selected>{{v['stt.model']}}</option>
        % end
      </select>
      <p class="hint model">Running now: {{v['stt.running_model']}} · changing it needs a restart</p>
      % err('stt.model')
    </div>
    <div class="field">
      <label for="stt-budget">Time budget (ms)</label>
      <input id="stt-budget" name="stt.budget_ms" type="number" min="50" max="10000" step="10" value="{{v['stt.budget_ms']}}" inputmode="numeric">
      <p class="hint">With “auto”, the most accurate model whose end of speech → transcript fits this on this box.</p>
      % err('stt.budget_ms')
    </div>
  </div>
  % if v['stt.fallback']:
  <p class="err stt-fallback">{{v['stt.fallback']}}</p>
  % end
  % c = v['stt.choice']
  % if c:
  <div class="stt-choice">
    <p class="hint">The box chose <strong>{{c['model']}}</strong>: {{c['reason']}}. Measured {{c['utc']}}:</p>
    <table>
      <tr><th>model</th><th>end of speech → transcript</th><th>words wrong (held-out voices)</th></tr>
      % for m in c['measured']:
      <tr><td>{{m['model']}}</td><td>{{m['error'] or m.get('skipped') or '%.0f ms' % m['decode_ms']}}</td><td>{{accuracy.get(m['model'], '')}}</td></tr>
      % end
    </table>
  </div>
  % end
  <div class="field">
    <label for="silence">End of speech after <output id="silence-out" for="silence">{{v['endpoint.silence_ms']}}</output> ms of silence</label>
    <input id="silence" name="endpoint.silence_ms" type="number" min="100" max="3000" step="50" value="{{v['endpoint.silence_ms']}}" inputmode="numeric">
    <p class="hint">Used when Hearth cannot tell from the words whether the sentence is finished (a finished one ends sooner, an unfinished one like “set a timer for” waits longer). Shorter answers faster; longer lets people pause mid-sentence. 100–3000.</p>
    % err('endpoint.silence_ms')
  </div>

  <h2>Wake word</h2>
  <div class="row">
    <div class="field">
      <label for="wake-model">Wake word</label>
      <select id="wake-model" name="wake.model">
        % for m in choices['wake.model']:
        <option value="{{m}}"{{!' selected' if m == v['wake.model'] else ''}}>{{m.replace('_', ' ')}}</option>
        % end
      </select>
      % err('wake.model')
    </div>
    <div class="field">
      <label for="sensitivity">Sensitivity</label>
      <input id="sensitivity" name="wake.sensitivity" type="number" min="0" max="1" step="0.05" value="{{v['wake.sensitivity']}}" inputmode="decimal">
      <p class="hint">0–1: higher wakes more easily (and more by mistake).</p>
      % err('wake.sensitivity')
    </div>
  </div>

  <h2>Speaking</h2>
  <div class="field">
    <label for="voice">Voice</label>
    <select id="voice" name="tts.voice">
      % for name in choices['tts.voice']:
      <option value="{{name}}"{{!' selected' if name == v['tts.voice'] else ''}}>{{name}}</option>
      % end
    </select>
    % err('tts.voice')
  </div>
  <button type="submit">Save voice settings</button>
</form>

<form method="post" action="/api/voice/measure" data-api class="card" id="measure">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <h2>Measure this box</h2>
  <p class="hint">Times each installed model here again (a few seconds, while the box keeps serving) and chooses anew.</p>
  <button type="submit">Measure this box</button>
</form>

<form method="post" action="/api/voice/words" data-api class="card" id="words">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <h2>Household words</h2>
  <div class="field">
    <label for="words-text">Names and words Hearth should know, one a line</label>
    <textarea id="words-text" name="words" rows="5" placeholder="bilge pump&#10;anchor light&#10;Freya">{{'\n'.join(v['stt.words'])}}</textarea>
    <p class="hint">People, pets, rooms and things (“bilge pump”). Device and room names join by themselves. Up to 100, each up to 40 characters.</p>
    % err('stt.words')
  </div>
  <button type="submit">Save words</button>
</form>

% include('offers.tpl')

<form method="post" action="/api/voice/speak" id="speak" class="card">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <h2>Try a voice</h2>
  <div class="field">
    <label for="speak-text">Say this</label>
    <textarea id="speak-text" name="text" rows="2" maxlength="2000" required>Hello! Dinner is ready in ten minutes.</textarea>
    % err('text')
  </div>
  <div class="row">
    <div class="field">
      <label for="speak-voice">With voice</label>
      <select id="speak-voice" name="voice">
        % for name in choices['tts.voice']:
        <option value="{{name}}"{{!' selected' if name == v['tts.voice'] else ''}}>{{name}}</option>
        % end
      </select>
    </div>
  </div>
  <button type="submit">Speak</button>
  <audio id="speak-audio" controls preload="none"></audio>
</form>
