// Live progress of training runs: every bar of a queued or running run polls its run's small
// progress document; on the run page it also refreshes the curves and the log tail, and reloads
// once the run finished (to show the eval tables, plots and deploy form).
(function () {
  "use strict";
  var POLL_MS = 2000;

  function poll(bar) {
    var row = bar.closest("tr") || document;
    var label = bar.parentNode.querySelector(".run-progress-label");
    fetch(bar.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (run) {
        bar.value = run.progress;
        if (label) { label.textContent = run.total_steps ? run.step + "/" + run.total_steps + " steps" : ""; }
        var status = row.querySelector("[data-run-status]");
        if (status) { status.textContent = run.status_label; status.className = "status status-" + run.status; }
        if (bar.dataset.live) {
          var log = document.getElementById("run-log");
          if (log) { log.textContent = run.log_tail; log.scrollTop = log.scrollHeight; }
          var curves = document.getElementById("run-curves");
          if (curves) { curves.src = curves.dataset.src + "?t=" + Date.now(); }
        }
        if (run.finished && bar.dataset.state !== run.status) {
          window.location.reload();
        } else if (!run.finished) {
          window.setTimeout(function () { poll(bar); }, POLL_MS);
        }
      })
      .catch(function () { window.setTimeout(function () { poll(bar); }, POLL_MS * 5); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("progress.run-progress").forEach(function (bar) {
      if (bar.dataset.state === "queued" || bar.dataset.state === "running") { poll(bar); }
    });
  });
})();
