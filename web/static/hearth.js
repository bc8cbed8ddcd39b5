// Hearth's pages work as plain forms; this makes them use the JSON API instead (no reloads,
// messages next to the fields), plays the "speak this" box, and waits out a restart.
(function () {
  "use strict";
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function notice(text, bad) {
    const box = document.getElementById("notice");
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
    box.classList.toggle("bad", !!bad);
    if (text) box.scrollIntoView({ block: "nearest" });
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach((p) => { p.hidden = true; p.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  }

  function showErrors(form, errors) {
    for (const [name, message] of Object.entries(errors || {})) {
      const slot = document.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
      const input = form.querySelector(`[name="${CSS.escape(name)}"]:not([type=hidden])`)
        || form.querySelector(`[name="${CSS.escape(name.split(".").pop())}"]:not([type=hidden])`);
      if (input) input.setAttribute("aria-invalid", "true");
      if (slot) { slot.textContent = message; slot.hidden = false; }
    }
  }

  function fields(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.name === "csrf" || el.disabled) continue;
      if (el.type === "checkbox") out[el.name] = el.checked;
      else if (el.type === "hidden" && form.querySelector(`input[type=checkbox][name="${CSS.escape(el.name)}"]`)) continue;
      else if (el.type === "number") out[el.name] = el.value === "" ? "" : Number(el.value);
      else if (el.type !== "submit" && el.type !== "file") out[el.name] = el.value;
    }
    return out;
  }

  async function call(form) {
    const multipart = form.enctype === "multipart/form-data";
    const init = { method: "POST", credentials: "same-origin",
                   headers: { "X-CSRF-Token": csrf(), "Accept": "application/json" } };
    if (multipart) init.body = new FormData(form);
    else { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(fields(form)); }
    const reply = await fetch(form.action, init);
    let data = {};
    try { data = await reply.json(); } catch (e) { data = { message: `The box answered ${reply.status}.` }; }
    return { ok: reply.ok, status: reply.status, data };
  }

  async function waitForRestart() {
    notice("Restarting… this page reloads when Hearth is back.");
    await new Promise((r) => setTimeout(r, 2000));
    for (let i = 0; i < 90; i++) {
      try { const r = await fetch("/health", { cache: "no-store" }); if (r.ok) { location.reload(); return; } } catch (e) { /* still down */ }
      await new Promise((r) => setTimeout(r, 1000));
    }
    notice("Hearth has not come back after 90 seconds. Check the box.", true);
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.id === "speak") { event.preventDefault(); return speak(form); }
    if (!form.hasAttribute("data-api")) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    clearErrors(form);
    try {
      const { ok, status, data } = await call(form);
      if (status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      if (!ok) { showErrors(form, data.errors); notice(data.message || "That did not work.", true); return; }
      if (form.hasAttribute("data-restart")) return waitForRestart();
      if (form.hasAttribute("data-reload")) {
        location.href = location.pathname + "?notice=" + encodeURIComponent(data.message || "Done.");
        return;
      }
      notice(data.message || "Saved.");
    } catch (e) {
      notice("Could not reach Hearth. Is the box on?", true);
    } finally {
      if (button) button.disabled = false;
    }
  });

  async function speak(form) {
    const audio = document.getElementById("speak-audio");
    const button = form.querySelector("button[type=submit]");
    clearErrors(form);
    button.disabled = true;
    button.textContent = "Speaking…";
    try {
      const reply = await fetch(form.action, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/json" },
        body: JSON.stringify(fields(form)),
      });
      if (!reply.ok) {
        const data = await reply.json().catch(() => ({}));
        showErrors(form, data.errors);
        notice(data.message || "Could not speak that.", true);
        return;
      }
      const blob = await reply.blob();
      if (audio.dataset.url) URL.revokeObjectURL(audio.dataset.url);
      audio.dataset.url = URL.createObjectURL(blob);
      audio.dataset.bytes = String(blob.size);
      audio.src = audio.dataset.url;
      audio.play().catch(() => { /* autoplay may be blocked; the controls are there */ });
      notice("");
    } catch (e) {
      notice("Could not reach Hearth. Is the box on?", true);
    } finally {
      button.disabled = false;
      button.textContent = "Speak";
    }
  }

  window.Hearth = { csrf, notice };      // for the pages' own scripts (review.js)

  const silence = document.getElementById("silence");
  if (silence) silence.addEventListener("input", () => { document.getElementById("silence-out").value = silence.value; });
})();
