// New change: refresh the risk / priority / conflicts preview while the form is filled in.
// Without this script the page still works: "Check risk and conflicts" renders the same panel.
// The form is posted as it is (its hidden csrf_token input included) to the page's preview
// endpoint, which answers with the panel's HTML; nothing is filed.
(function () {
  "use strict";
  var form = document.querySelector("form[data-preview-url]");
  var panel = document.getElementById("change-preview");
  if (!form || !panel || !window.fetch || !window.FormData) {
    return;
  }
  // The fields the assessment reads; typing a title or a description changes nothing.
  var FIELDS = ["change_type", "category", "template", "services", "impact", "urgency", "planned_start",
                "planned_end", "rollback_plan", "rollback_tested", "implementer"];
  var DELAY = 400;
  var timer = null;
  var latest = 0;
  var pending = null;

  function show(html) {
    panel.innerHTML = html;
    panel.removeAttribute("aria-busy");
  }

  function refresh() {
    var mine = ++latest;
    if (pending && pending.abort) {
      pending.abort();
    }
    pending = window.AbortController ? new AbortController() : null;
    panel.setAttribute("aria-busy", "true");
    fetch(form.getAttribute("data-preview-url"), {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "Accept": "text/html" },
      signal: pending ? pending.signal : undefined
    }).then(function (response) {
      if (response.redirected) {  // the session ended: the answer is the sign-in page
        throw new Error("signed out");
      }
      if (response.status !== 200 && response.status !== 422) {
        throw new Error("HTTP " + response.status);
      }
      return response.text();
    }).then(function (html) {
      if (mine === latest) {
        show(html);
      }
    }).catch(function (error) {
      if (error.name === "AbortError" || mine !== latest) {
        return;
      }
      var note = document.createElement("p");
      note.className = "error";
      note.textContent = error.message === "signed out"
        ? "Your session has ended: reload the page to sign in again."
        : "The preview is not available right now; use “Check risk and conflicts”.";
      panel.textContent = "";
      panel.appendChild(note);
      panel.removeAttribute("aria-busy");
    });
  }

  function schedule(event) {
    var name = event.target && event.target.name;
    if (FIELDS.indexOf(name) === -1) {
      return;
    }
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, DELAY);
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
}());
