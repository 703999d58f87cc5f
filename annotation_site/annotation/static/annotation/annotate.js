// The annotate page: renders the claimed item, takes the annotator's choice by keyboard or mouse,
// and talks to the annotation API. Written by hand because the page is one small form; no
// framework or CDN asset is needed.
(function () {
  "use strict";

  const script = document.getElementById("annotate-script");
  const POLL_MS = Number(script.dataset.pollMs || 3000);
  const IDLE_MS = 120000; // stop counting active time after two minutes without input
  const RATINGS = ["significantly_better", "better", "slightly_better", "negligibly_better"];
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  const state = {
    assignment: null,
    chosen: null,
    rating: null,
    safe: { A: null, B: null },
    activeMs: 0,
    lastTick: performance.now(),
    lastInput: performance.now(),
    busy: false,
    pollTimer: null,
  };

  async function api(method, path, body) {
    const response = await fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 || response.status === 403) {
      const data = await response.json().catch(() => ({}));
      if (response.status === 401 || /credentials/i.test(data.message || "")) {
        window.location.href = "/accounts/login/?next=/annotate/";
      }
      throw new Error(data.message || "You may not do this.");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const fields = data.fields ? " " + Object.entries(data.fields).map(([k, v]) => k + ": " + v).join("; ") : "";
      throw new Error((data.message || "The server refused the request (" + response.status + ").") + fields);
    }
    return data;
  }

  // --- time on item: counted only while the page is visible and the annotator is active --------
  function tick() {
    const now = performance.now();
    if (state.assignment && document.visibilityState === "visible" && now - state.lastInput < IDLE_MS) {
      state.activeMs += now - state.lastTick;
    }
    state.lastTick = now;
  }
  setInterval(tick, 1000);
  ["keydown", "mousedown", "mousemove", "scroll", "input"].forEach((name) =>
    document.addEventListener(name, () => { state.lastInput = performance.now(); }, { passive: true })
  );
  document.addEventListener("visibilitychange", tick);

  // --- rendering ----------------------------------------------------------------------------------
  function showMessage(text, id) {
    const element = $(id || "message");
    element.textContent = text || "";
    element.hidden = !text;
  }

  function notice(text) {
    const element = $("notice");
    element.textContent = text;
    element.hidden = !text;
    if (text) setTimeout(() => { if (element.textContent === text) element.hidden = true; }, 6000);
  }

  function pressed(selector, predicate) {
    document.querySelectorAll(selector).forEach((button) => button.setAttribute("aria-pressed", String(predicate(button))));
  }

  function renderChoices() {
    pressed("[data-choose]", (b) => b.dataset.choose === state.chosen);
    pressed("[data-rating]", (b) => b.dataset.rating === state.rating);
    pressed("[data-safety]", (b) => state.safe[b.dataset.safety] === (b.dataset.safe === "true"));
    ["A", "B"].forEach((label) => $("response-" + label).classList.toggle("chosen", state.chosen === label));
    const refusal = safetyRefusal();
    showMessage(refusal);
  }

  function safetyRefusal() {
    const a = state.assignment;
    if (!a || a.guideline_kind !== "safety" || !state.chosen) return "";
    const other = state.chosen === "A" ? "B" : "A";
    if (state.safe[state.chosen] === false && state.safe[other] === true) {
      return "The chosen response is labelled unsafe while the other is safe. Such pairs are never used: choose the safe response, or check the safety labels.";
    }
    return "";
  }

  function renderDialogue(turns) {
    const list = $("dialogue");
    list.replaceChildren();
    turns.forEach((turn) => {
      const entry = document.createElement("li");
      entry.className = "turn " + turn.role;
      const who = document.createElement("strong");
      who.textContent = turn.role === "user" ? "User" : "Assistant";
      const text = document.createElement("div");
      text.className = "turn-text";
      text.textContent = turn.content;
      entry.append(who, text);
      list.append(entry);
    });
  }

  function showGuideline(kind) {
    document.querySelectorAll("[data-guideline-kind]").forEach((article) => {
      article.hidden = article.dataset.guidelineKind !== kind;
    });
  }

  function render(payload) {
    const assignment = payload.assignment;
    state.assignment = assignment;
    state.chosen = null;
    state.rating = null;
    state.safe = { A: null, B: null };
    state.activeMs = 0;
    state.lastTick = performance.now();
    showMessage("");
    $("continue-box").hidden = true;
    $("continue-text").value = "";
    $("demonstration-text").value = "";
    if (!assignment) {
      $("task").hidden = true;
      $("waiting").hidden = false;
      const q = payload.queue || {};
      $("waiting-text").textContent = q.needs_samples
        ? q.needs_samples + " prompt(s) are having their responses generated; they will appear here when ready."
        : "New items are being prepared.";
      startPolling();
      return;
    }
    stopPolling();
    $("waiting").hidden = true;
    $("task").hidden = false;
    const comparison = assignment.task_kind === "comparison";
    $("task-kind-label").textContent = comparison ? "Compare two responses" : "Write the ideal response";
    $("task-guideline-label").textContent =
      assignment.guideline_kind === "safety" ? "Safety guideline" : "Helpfulness guideline";
    $("remaining").textContent = "";
    showReadyCount();
    renderDialogue(assignment.dialogue);
    $("comparison-task").hidden = !comparison;
    $("demonstration-task").hidden = comparison;
    $("continue-open").hidden = !comparison;
    if (comparison) {
      assignment.responses.forEach((response) => { $("response-" + response.label + "-text").textContent = response.text; });
      document.querySelectorAll(".safety").forEach((fieldset) => { fieldset.hidden = assignment.guideline_kind !== "safety"; });
    }
    showGuideline(assignment.guideline_kind);
    renderChoices();
    window.scrollTo(0, 0);
  }

  async function showReadyCount() {
    try {
      const q = await api("GET", "/api/queue/status/");
      $("remaining").textContent = "· " + q.ready_for_you + (q.ready_for_you >= q.cap ? "+" : "") + " more ready";
    } catch (error) { /* informative only */ }
  }

  async function refreshProgress() {
    try {
      const progress = await api("GET", "/api/me/progress/");
      $("quota-done").textContent = progress.done;
      $("quota-total").textContent = progress.quota;
      $("quota-week").textContent = progress.week;
      $("quota-bar").max = Math.max(progress.quota, 1);
      $("quota-bar").value = progress.done;
    } catch (error) { /* the bar is informative only; the next submit refreshes it again */ }
  }

  async function loadNext() {
    try {
      render(await api("POST", "/api/annotate/next/", {}));
    } catch (error) {
      showMessage(error.message);
    }
  }

  // --- waiting for items: poll the small queue endpoint, load the next item once one is ready ----
  function startPolling() {
    if (state.pollTimer) return;
    state.pollTimer = setInterval(async () => {
      try {
        const queue = await api("GET", "/api/queue/status/");
        if (queue.ready_for_you > 0) {
          stopPolling();
          await loadNext();
        } else if (queue.needs_samples) {
          $("waiting-text").textContent =
            queue.needs_samples + " prompt(s) are having their responses generated; they will appear here when ready.";
        }
      } catch (error) { /* a dead server is retried on the next tick */ }
    }, POLL_MS);
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  // --- actions ------------------------------------------------------------------------------------
  function choose(label) { state.chosen = label; renderChoices(); }
  function rate(index) { state.rating = RATINGS[index]; renderChoices(); }
  function label(response, safe) { state.safe[response] = safe; renderChoices(); }

  async function submit() {
    const a = state.assignment;
    if (!a || state.busy) return;
    tick();
    let path;
    let body;
    if (a.task_kind === "comparison") {
      if (!state.chosen) return showMessage("Choose the better response first (A or B).");
      if (!state.rating) return showMessage("Say how much better it is (1-4).");
      if (a.guideline_kind === "safety" && (state.safe.A === null || state.safe.B === null)) {
        return showMessage("Label both responses safe or unsafe (Q/W for A, O/P for B).");
      }
      const refusal = safetyRefusal();
      if (refusal) return showMessage(refusal);
      path = "/api/assignments/" + a.id + "/comparison/";
      body = { chosen: state.chosen, rating: state.rating, active_ms: Math.round(state.activeMs), next: {} };
      if (a.guideline_kind === "safety") {
        body.response_a_is_safe = state.safe.A;
        body.response_b_is_safe = state.safe.B;
      }
    } else {
      const text = $("demonstration-text").value.trim();
      if (!text) return showMessage("Write the ideal response before submitting.");
      path = "/api/assignments/" + a.id + "/demonstration/";
      body = { text: text, active_ms: Math.round(state.activeMs), next: {} };
    }
    const continuation = $("continue-box").hidden ? "" : $("continue-text").value.trim();
    state.busy = true;
    try {
      // `next: {}` makes the submit claim and return the next item: one request per item.
      const saved = await api("POST", path, body);
      if (continuation) {
        await api("POST", "/api/comparisons/" + saved.id + "/continue/", { message: continuation });
        notice("Saved. Your continued dialogue is queued; its responses are being generated.");
      } else {
        notice("Saved.");
      }
      refreshProgress();
      render(saved.next);
    } catch (error) {
      showMessage(error.message);
    } finally {
      state.busy = false;
    }
  }

  function openSkip() {
    if (!state.assignment) return;
    showMessage("", "skip-message");
    $("skip-reason").value = "";
    $("skip-reason-choice").value = "";
    $("skip-dialog").showModal();
    $("skip-reason-choice").focus();
  }

  async function confirmSkip(event) {
    event.preventDefault();
    const choice = $("skip-reason-choice").value;
    const reason = (choice && choice !== "other" ? choice : $("skip-reason").value).trim();
    if (!reason) return showMessage("Say why you skip this item.", "skip-message");
    try {
      const skipped = await api("POST", "/api/assignments/" + state.assignment.id + "/skip/", { reason: reason, next: {} });
      $("skip-dialog").close();
      notice("Skipped.");
      render(skipped.next);
    } catch (error) {
      showMessage(error.message, "skip-message");
    }
  }

  function openPrompt() {
    showMessage("", "prompt-message");
    $("prompt-dialog").showModal();
    $("prompt-text").focus();
  }

  async function queuePrompt(event) {
    if (event) event.preventDefault();
    const text = $("prompt-text").value.trim();
    if (!text) return showMessage("Write a prompt first.", "prompt-message");
    try {
      await api("POST", "/api/prompts/", { text: text, guideline_kind: $("prompt-kind").value });
      $("prompt-text").value = "";
      $("prompt-dialog").close();
      notice("Your prompt is queued; its responses are being generated.");
    } catch (error) {
      showMessage(error.message, "prompt-message");
    }
  }

  function openContinue() {
    if (!state.assignment || state.assignment.task_kind !== "comparison") return;
    $("continue-box").hidden = false;
    $("continue-text").focus();
  }

  function toggleGuideline() {
    const body = $("guideline-body");
    body.hidden = !body.hidden;
    $("guideline-toggle").setAttribute("aria-expanded", String(!body.hidden));
    $("guideline-panel").classList.toggle("collapsed", body.hidden);
  }

  // --- mouse --------------------------------------------------------------------------------------
  document.querySelectorAll("[data-choose]").forEach((b) => b.addEventListener("click", () => choose(b.dataset.choose)));
  document.querySelectorAll("[data-rating]").forEach((b, i) => b.addEventListener("click", () => rate(i)));
  document.querySelectorAll("[data-safety]").forEach((b) =>
    b.addEventListener("click", () => label(b.dataset.safety, b.dataset.safe === "true"))
  );
  $("submit").addEventListener("click", submit);
  $("skip-open").addEventListener("click", openSkip);
  $("skip-form").addEventListener("submit", confirmSkip);
  $("skip-cancel").addEventListener("click", () => $("skip-dialog").close());
  $("skip-reason-choice").addEventListener("change", () => {
    if ($("skip-reason-choice").value === "other") $("skip-reason").focus();
  });
  $("new-prompt-open").addEventListener("click", openPrompt);
  $("prompt-form").addEventListener("submit", queuePrompt);
  $("prompt-cancel").addEventListener("click", () => $("prompt-dialog").close());
  $("continue-open").addEventListener("click", openContinue);
  $("guideline-toggle").addEventListener("click", toggleGuideline);
  $("shortcuts-open").addEventListener("click", () => $("shortcuts-dialog").showModal());

  // --- keyboard -----------------------------------------------------------------------------------
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target.matches && target.matches("textarea, input, select");
    if (document.querySelector("dialog[open]")) {
      if (event.key === "Enter" && event.ctrlKey && $("prompt-dialog").open) queuePrompt(event);
      return; // the open dialog handles its own keys (Esc closes it)
    }
    if (typing) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
      else if (event.key === "Escape") target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    const comparison = state.assignment && state.assignment.task_kind === "comparison";
    const safety = comparison && state.assignment.guideline_kind === "safety";
    let handled = true;
    if (key === "a" && comparison) choose("A");
    else if (key === "b" && comparison) choose("B");
    else if (["1", "2", "3", "4"].includes(key) && comparison) rate(Number(key) - 1);
    else if (key === "q" && safety) label("A", true);
    else if (key === "w" && safety) label("A", false);
    else if (key === "o" && safety) label("B", true);
    else if (key === "p" && safety) label("B", false);
    else if (key === "enter") submit();
    else if (key === "k") openSkip();
    else if (key === "c") openContinue();
    else if (key === "d" && state.assignment && !comparison) $("demonstration-text").focus();
    else if (key === "n") openPrompt();
    else if (key === "g") toggleGuideline();
    else if (event.key === "?") $("shortcuts-dialog").showModal();
    else handled = false;
    if (handled) event.preventDefault();
  });

  render(JSON.parse(document.getElementById("initial-state").textContent));
})();
