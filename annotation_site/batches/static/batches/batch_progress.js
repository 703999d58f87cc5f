// Live export progress in the batch list: polls the batch API while a batch is closed or exporting,
// moves its progress bar, and reloads the list once it is exported (to show the download link); asks
// before a close.
(function () {
  "use strict";
  var POLL_MS = 1000;

  function poll(bar) {
    var label = bar.parentNode.querySelector(".batch-progress-label");
    fetch(bar.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (batch) {
        bar.value = batch.export_progress;
        bar.dataset.state = batch.state;
        if (label) { label.textContent = Math.round(batch.export_progress * 100) + "%"; }
        if (batch.state === "exported" || batch.state === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(function () { poll(bar); }, POLL_MS);
        }
      })
      .catch(function () { window.setTimeout(function () { poll(bar); }, POLL_MS * 5); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    // "Close now" cannot be undone: ask first, saying what it does.
    document.querySelectorAll("[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.dataset.confirm)) { event.preventDefault(); }
      });
    });
    document.querySelectorAll("progress.batch-progress").forEach(function (bar) {
      if (bar.dataset.state === "exporting" || bar.dataset.state === "closed") { poll(bar); }
    });
  });
})();
