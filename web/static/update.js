// The System page's update card: the bundle goes up as the raw request body (the box spools it
// to its data disk), then the page follows the install until the "Reboot now" button appears.
(function () {
  "use strict";
  const form = document.getElementById("update-upload");
  if (!form) return;
  const bar = document.getElementById("update-progress");
  const step = document.getElementById("update-step");
  const err = document.querySelector('[data-error-for="bundle"]');
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function say(text, percent) {
    step.hidden = !text;
    step.textContent = text;
    bar.hidden = percent === null;
    if (percent !== null) bar.value = percent;
  }
  function fail(message) {
    say("", null);
    err.textContent = message;
    err.hidden = false;
  }

  async function follow() {
    for (let i = 0; i < 3600; i++) {
      let doc;
      try { doc = await (await fetch("/api/system/update", { cache: "no-store", credentials: "same-origin" })).json(); }
      catch (e) { await new Promise((r) => setTimeout(r, 2000)); continue; }
      const p = doc.progress || {};
      if (p.state === "installed") {
        say(p.message, 100);
        document.getElementById("update-reboot").hidden = false;
        return;
      }
      if (p.state === "failed") return fail(p.message);
      say(`${p.version || ""} ${p.step || ""} (${p.percent || 0}%)`, p.percent || 0);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = form.querySelector("input[type=file]").files[0];
    err.hidden = true;
    if (!file) return fail("Choose a bundle file (.raucb) first.");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-File-Name", file.name.replace(/[^A-Za-z0-9._-]/g, "_"));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) say(`Uploading ${file.name}: ${Math.round(100 * e.loaded / e.total)}%`, Math.round(100 * e.loaded / e.total));
    };
    xhr.upload.onload = () => say(`Verifying ${file.name}…`, null);
    xhr.onload = () => {
      button.disabled = false;
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (e) { data = { message: `The box answered ${xhr.status}.` }; }
      if (xhr.status === 401) { location.href = "/login?next=/system"; return; }
      if (xhr.status !== 202) return fail(data.message || "The bundle was refused.");
      say(data.message, 0);
      follow();
    };
    xhr.onerror = () => { button.disabled = false; fail("The upload broke off: is the box on?"); };
    xhr.send(file);
  });
})();
