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
  <p class="hint model">Model: {{v['stt.model']}}</p>
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
