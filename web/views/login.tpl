% rebase('base.tpl')
<form method="post" action="/login" class="card narrow">
  <input type="hidden" name="csrf" value="{{login_csrf}}">
  <input type="hidden" name="next" value="{{next}}">
  <div class="field">
    <label for="password">Admin password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
    % if error:
    <p class="err" role="alert">{{error}}</p>
    % end
  </div>
  <button type="submit">Sign in</button>
  <p class="hint">The password was shown once when Hearth first started. Forgot it? On the box run
  <code>hearth admin reset-password</code>.</p>
</form>
