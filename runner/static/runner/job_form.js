/* The job form: the next 5 fires previewed as the schedule or zone is edited (computed
   by the server, admin:runner_job_preview), and only the fields the chosen type uses.
   Plain script, no framework, no network beyond this server. */
(function () {
  "use strict";
  var DEBOUNCE_MS = 300;
  var SCRIPT_ONLY = ["interpreter", "args", "env"];
  var SESSION_ONLY = ["thinking"];

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function render(box, ok, body) {
    box.textContent = "";
    if (!ok) {
      var what = body.field === "timezone" ? "Time zone " : "Schedule ";
      box.appendChild(element("p", what + (body.error || "cannot be previewed"), "jr-preview-error"));
      return;
    }
    var title = "Next " + body.fires.length + " fires (" + body.zone + ")";
    if (body.words) title += ": " + body.words;
    box.appendChild(element("strong", title));
    var list = element("ol");
    body.fires.forEach(function (fire) {
      var item = element("li", fire.local + " ");
      item.appendChild(element("small", "(" + fire.relative + ")"));
      item.title = fire.at;
      list.appendChild(item);
    });
    box.appendChild(list);
  }

  function setUpPreview() {
    var box = document.getElementById("jr-preview");
    var schedule = document.getElementById("id_schedule");
    if (!box || !schedule) return;
    var zone = document.getElementById("id_timezone");
    var row = schedule.closest(".form-row");
    if (row) row.appendChild(box);
    var latest = 0;
    var timer = null;
    function refresh() {
      var mine = ++latest;
      var query = new URLSearchParams({ schedule: schedule.value, timezone: zone ? zone.value : "" });
      fetch(box.dataset.url + "?" + query.toString(), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          return response.json().then(function (body) { return { ok: response.ok, body: body }; });
        })
        .then(function (answer) { if (mine === latest) render(box, answer.ok, answer.body); })
        .catch(function () { if (mine === latest) render(box, false, { error: "cannot be previewed now" }); });
    }
    function later() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DEBOUNCE_MS);
    }
    schedule.addEventListener("input", later);
    if (zone) {
      zone.addEventListener("input", later);
      zone.addEventListener("change", later);
    }
    if (schedule.value.trim()) refresh();
  }

  function showRows(names, shown) {
    names.forEach(function (name) {
      document.querySelectorAll(".field-" + name).forEach(function (row) {
        row.hidden = !shown;
      });
    });
  }

  function setUpTypeFields() {
    var type = document.getElementById("id_type");
    if (!type) return;
    function apply() {
      showRows(SCRIPT_ONLY, type.value !== "session");
      showRows(SESSION_ONLY, type.value === "session");
    }
    type.addEventListener("change", apply);
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpPreview();
    setUpTypeFields();
  });
})();
