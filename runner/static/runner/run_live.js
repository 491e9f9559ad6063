/* The page of a pending or running run follows it: every second it reads the run's
   live record (admin:runner_run_live) and shows the output tails the executor keeps
   writing; when the run starts (its start time, worker) or ends (the final record),
   the page reloads. */
(function () {
  "use strict";
  var EVERY_MS = 1000;

  function setText(id, text) {
    var node = document.getElementById(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function follow(box) {
    function poll() {
      fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error(response.status);
          return response.json();
        })
        .then(function (run) {
          if (run.final || run.status !== box.dataset.status) {
            window.location.reload();
            return;
          }
          var heading = document.querySelector("#content h2");
          if (heading) heading.textContent = heading.textContent.replace(/\((pending|running)\)$/, "(" + run.status + ")");
          document.querySelectorAll("#jr-live-status, .field-status_badge .jr-badge").forEach(
            function (badge) {
              badge.textContent = run.status;
              badge.className = "jr-badge jr-" + run.status;
            }
          );
          setText("jr-stdout", run.stdout);
          setText("jr-stderr", run.stderr);
          var state = run.status === "pending" ? "Waiting for a worker" : "Running for " + run.elapsed;
          setText("jr-live-note", state +
            ". This page follows the run: its output below refreshes every second until it ends.");
          setTimeout(poll, EVERY_MS);
        })
        .catch(function () { setTimeout(poll, EVERY_MS * 3); });
    }
    setTimeout(poll, EVERY_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("jr-live");
    if (box) follow(box);
  });
})();
