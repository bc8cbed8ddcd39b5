// "What Hearth heard" on the Privacy page: the review, consent and delete forms post JSON and the
// row changes in place (no reload: the list keeps its filters and the place you were at). Without
// JavaScript the same forms post as plain forms and the page comes back.
(function () {
  "use strict";
  const { csrf, notice } = window.Hearth;      // hearth.js, loaded first

  function show(item, u) {
    const labels = { unreviewed: "not reviewed", right: "right", wrong: "wrong" };
    item.dataset.state = u.state;
    const state = item.querySelector(".state");
    state.textContent = labels[u.state];
    state.dataset.state = u.state;
    item.querySelector(".consent").textContent = u.consent
      ? `allowed for export by ${u.consent.by} at ${u.consent.at}` : "not allowed for export";
    item.querySelector("input[name=allow]").value = u.consent ? "off" : "on";
    item.querySelector(".consent-button").textContent = u.consent ? "Withdraw export" : "Allow export";
    item.querySelector("textarea[name=corrected]").value = u.corrected || "";
    const offered = item.querySelector(".offered");
    offered.hidden = !(u.offered && u.offered.length);
    offered.querySelector("span").textContent = (u.offered || []).join(", ");
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.hasAttribute("data-heard")) return;
    event.preventDefault();
    const item = form.closest(".heard-item");
    const error = item.querySelector("[data-heard-error]");
    const body = {};
    for (const el of form.elements) {
      if (el.name && el.name !== "csrf" && el.type !== "submit") body[el.name] = el.value;
    }
    if (event.submitter && event.submitter.name) body[event.submitter.name] = event.submitter.value;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    error.hidden = true;
    try {
      const reply = await fetch(form.action, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body),
      });
      if (reply.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      const data = await reply.json().catch(() => ({ message: `The box answered ${reply.status}.` }));
      if (!reply.ok) {
        error.textContent = data.message || "That did not work.";
        error.hidden = false;
        notice(data.message || "That did not work.", true);
        return;
      }
      if (form.hasAttribute("data-remove")) item.remove();
      else show(item, data.utterance);
      notice(data.message || "Saved.");
    } catch (e) {
      notice("Could not reach Hearth. Is the box on?", true);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
})();
