% rebase('base.tpl')
% def err(name):
<p class="err" data-error-for="{{name}}"{{!'' if errors.get(name) else ' hidden'}}>{{errors.get(name, '')}}</p>
% end
<div class="banner-error" role="alert">Hearth is in recovery mode: the device registry
  <code>{{r['file']}}</code> is damaged ({{r['problem']}}) and no good snapshot was found in
  <code>{{r['snapshots']}}</code>.</div>

<section class="card">
  <h2>What runs now</h2>
  <p>Only this page. Devices cannot log in (their logins live in the registry), and speech, Wyoming,
  Hermes and firmware updates are off until the registry is restored or reset.</p>
</section>

<section class="card">
  <h2>Restore a backup</h2>
  <p>The file from System → Download backup. The damaged registry is moved to
  <code>{{r['damaged_dir']}}</code> (not deleted) and Hearth restarts with the backup's devices and settings.</p>
  <form method="post" action="/api/system/restore" enctype="multipart/form-data" data-api data-restart class="restore">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <div class="field">
      <label for="backup">Backup file</label>
      <input id="backup" name="backup" type="file" accept=".gz,.tgz,application/gzip">
      % err('backup')
    </div>
    <button type="submit">Restore and restart</button>
  </form>
</section>

<section class="card">
  <h2>Start again with an empty registry</h2>
  <p>The damaged registry is moved to <code>{{r['damaged_dir']}}</code>; the configuration and the admin
  password stay. Every device has to pair again.</p>
  <form method="post" action="/api/recovery/reset" data-api data-restart data-confirm="Start with an empty registry? Every device has to pair again.">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <div class="field">
      <label for="confirm">Type <b>reset</b> to confirm</label>
      <input id="confirm" name="confirm" autocomplete="off">
      % err('confirm')
    </div>
    <button type="submit" class="danger">Reset and restart</button>
  </form>
</section>
