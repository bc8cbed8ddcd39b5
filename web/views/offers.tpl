% # Words that corrections on the Privacy page offered (appliance/voice/review.py): included by voice.tpl
<section class="card" id="offers" aria-labelledby="offers-title">
  <h2 id="offers-title">Words from corrections</h2>
  % if not offers:
  <p class="empty">None waiting. When you correct what Hearth heard (Privacy → What Hearth heard), the words it did not know wait here for you to add.</p>
  % else:
  <p class="hint">You corrected these where Hearth heard something else. Add one and Hearth listens for it from the next command on.</p>
  <ul class="pending offers">
    % for o in offers:
    <li data-word="{{o['word']}}">
      <span class="who"><b>{{o['word']}}</b><small class="hint">{{o['count']}} correction(s) · “{{o['example']}}”</small></span>
      <div class="actions">
        <form method="post" action="/api/voice/words/accept" data-api data-reload>
          <input type="hidden" name="csrf" value="{{csrf}}">
          <input type="hidden" name="word" value="{{o['word']}}">
          <button type="submit" class="small">Add</button>
        </form>
        <form method="post" action="/api/voice/words/dismiss" data-api data-reload>
          <input type="hidden" name="csrf" value="{{csrf}}">
          <input type="hidden" name="word" value="{{o['word']}}">
          <button type="submit" class="small secondary">Dismiss</button>
        </form>
      </div>
    </li>
    % end
  </ul>
  % end
  <p class="err" data-error-for="word"{{!'' if errors.get('word') else ' hidden'}}>{{errors.get('word', '')}}</p>
</section>
