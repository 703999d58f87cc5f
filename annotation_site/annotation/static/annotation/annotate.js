// The annotate page: renders the claimed item, takes the annotator's choice by keyboard or mouse,
// and talks to the annotation API. Written by hand because the page is one small form; no
// framework or CDN asset is needed.
(function () {
  "use strict";

  const script = document.getElementById("annotate-script");
  const POLL_MS = Number(script.dataset.pollMs || 3000);
  // Which guideline kinds ask for a safe/unsafe label on each response: GuidelineKind.asks_safety_labels.
  const SAFETY_LABEL_KINDS = (script.dataset.safetyLabelKinds || "").split(",").filter(Boolean);
  const asksSafety = (assignment) => Boolean(assignment) && SAFETY_LABEL_KINDS.includes(assignment.guideline_kind);
  const IDLE_MS = 120000; // stop counting active time after two minutes without input
  const RATINGS = ["significantly_better", "better", "slightly_better", "negligibly_better"];
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  const UNDO_MS = 8000; // how long "Undo" is offered after a submit
  const NOTICE_MS = 4000; // a notice fades after this long
  const RATING_LABELS = {
    significantly_better: "significantly better", better: "better", slightly_better: "slightly better",
    negligibly_better: "negligibly better / unsure",
  };

  const state = {
    assignment: null,
    amending: null, // {comparison: id} while the annotator changes an answer already saved
    lastSaved: null, // {assignment, answer, comparison} of the last submit, while "Undo" is offered
    raw: false,
    conflict: null, // the stored answer a refused repeat submit came back with
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
    const data = await response.json().catch(() => ({}));
    if (response.status === 401 || response.status === 403) {
      if (response.status === 401 || /credentials/i.test(data.message || "")) {
        window.location.href = "/accounts/login/?next=/annotate/";
      }
      throw refused(data.message || "You may not do this.", response.status, data);
    }
    if (!response.ok) {
      const fields = data.fields ? " " + Object.entries(data.fields).map(([k, v]) => k + ": " + v).join("; ") : "";
      throw refused((data.message || "The server refused the request (" + response.status + ").") + fields, response.status, data);
    }
    return data;
  }

  function refused(message, status, data) {
    const error = new Error(message);
    error.status = status;
    error.data = data;
    return error;
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

  // A floating notice: it covers nothing the annotator aims at and moves nothing (the task stays
  // where it was), and fades out by itself; with `undo` it offers "Undo" until it fades.
  let noticeTimer = null;
  function notice(text, options) {
    const element = $("notice");
    const undo = Boolean(options && options.undo);
    clearTimeout(noticeTimer);
    $("notice-text").textContent = text || "";
    $("undo").hidden = !undo;
    element.hidden = !text;
    element.classList.remove("fading");
    if (!text) return;
    const shownFor = undo ? UNDO_MS : NOTICE_MS;
    noticeTimer = setTimeout(() => {
      element.classList.add("fading");
      noticeTimer = setTimeout(() => { element.hidden = true; element.classList.remove("fading"); if (undo) state.lastSaved = null; }, 600);
    }, shownFor);
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

  function showRaw(raw) {
    state.raw = raw;
    $("raw-toggle").setAttribute("aria-pressed", String(raw));
    $("raw-toggle").firstChild.textContent = raw ? "Show formatted " : "Show raw text ";
    ["A", "B"].forEach((label) => {
      $("response-" + label + "-html").hidden = raw;
      $("response-" + label + "-text").hidden = !raw;
    });
  }

  function safetyRefusal() {
    const a = state.assignment;
    if (!asksSafety(a) || !state.chosen) return "";
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
    state.amending = null;
    $("amend-banner").hidden = true;
    $("conflict").hidden = true;
    $("submit").firstChild.textContent = "Submit ";
    showMessage("");
    $("continue-box").hidden = true;
    $("continue-text").value = "";
    $("demonstration-text").value = "";
    if (!assignment) {
      $("task").hidden = true;
      $("waiting").hidden = false;
      showWaiting(payload.queue || {});
      startPolling();
      return;
    }
    stopPolling();
    $("waiting").hidden = true;
    $("task").hidden = false;
    const comparison = assignment.task_kind === "comparison";
    $("task-kind-label").textContent = comparison ? "Compare two responses" : "Write the ideal response";
    const kind = assignment.guideline_kind;
    $("task-guideline-label").textContent = `${kind.charAt(0).toUpperCase()}${kind.slice(1)} guideline`;
    $("remaining").textContent = "";
    showReadyCount();
    renderDialogue(assignment.dialogue);
    $("comparison-task").hidden = !comparison;
    $("demonstration-task").hidden = comparison;
    $("continue-open").hidden = !comparison;
    if (comparison) {
      assignment.responses.forEach((response) => {
        $("response-" + response.label + "-text").textContent = response.text;
        // Markdown rendered on the server with raw HTML escaped (annotation/markdown.py).
        $("response-" + response.label + "-html").innerHTML = response.html;
      });
      showRaw(state.raw);
      document.querySelectorAll(".safety").forEach((fieldset) => { fieldset.hidden = !asksSafety(assignment); });
    }
    showGuideline(assignment.guideline_kind);
    renderChoices();
    window.scrollTo(0, 0);
  }

  // Honest waiting: say whether responses are being generated, or that nothing is coming until
  // someone writes or queues a prompt (and offer to write one).
  function showWaiting(q) {
    const generating = q.needs_samples > 0;
    $("waiting-text").textContent = generating
      ? q.needs_samples + (q.needs_samples >= q.cap ? "+" : "") +
        " prompt(s) are having their responses generated; they will appear here when ready."
      : "Nothing is ready for you and nothing is being generated. Write a prompt and its two responses will be generated for you to rate, or wait for an admin to queue more.";
    $("waiting-idle").hidden = generating;
    $("waiting-spinner").hidden = !generating;
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
        } else {
          showWaiting(queue);
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

  function chosenAnswer() {
    const answer = { chosen: state.chosen, rating: state.rating };
    if (asksSafety(state.assignment)) {
      answer.response_a_is_safe = state.safe.A;
      answer.response_b_is_safe = state.safe.B;
    }
    return answer;
  }

  function comparisonIncomplete() {
    const a = state.assignment;
    if (!state.chosen) return "Choose the better response first (A or B).";
    if (!state.rating) return "Say how much better it is (1-4).";
    if (asksSafety(a) && (state.safe.A === null || state.safe.B === null)) {
      return "Label both responses safe or unsafe (Q/W for A, O/P for B).";
    }
    return safetyRefusal();
  }

  function describe(stored) {
    let text = "Response " + stored.chosen + ", " + (RATING_LABELS[stored.rating] || stored.rating);
    if (stored.response_a_is_safe !== null && stored.response_a_is_safe !== undefined) {
      text += "; A " + (stored.response_a_is_safe ? "safe" : "unsafe") + ", B " + (stored.response_b_is_safe ? "safe" : "unsafe");
    }
    return text;
  }

  // The item was answered before (another tab, or a page shown again): the first answer was kept.
  function showConflict(stored) {
    const comparison = stored.comparison !== undefined;
    $("conflict-text").textContent = comparison
      ? "You already answered this item: " + describe(stored) + ". That first answer was kept; the answer on this page was not saved."
      : "You already wrote a response to this item; that first response was kept and the text on this page was not saved.";
    $("conflict-replace").hidden = !comparison;
    $("conflict").hidden = false;
    state.conflict = stored;
  }

  async function amend(comparisonId) {
    state.busy = true;
    try {
      await api("POST", "/api/comparisons/" + comparisonId + "/amend/", chosenAnswer());
      notice("Changed. Your new answer is saved; the change is recorded.");
      refreshProgress();
      await loadNext();
    } catch (error) {
      showMessage(error.message);
    } finally {
      state.busy = false;
    }
  }

  // "Undo": show the item just answered again, with its answer chosen, to change it.
  function undo() {
    const saved = state.lastSaved;
    if (!saved) return;
    state.lastSaved = null;
    notice("");
    stopPolling();
    render({ assignment: saved.assignment });
    state.chosen = saved.answer.chosen;
    state.rating = saved.answer.rating;
    if (saved.answer.response_a_is_safe !== undefined) {
      state.safe = { A: saved.answer.response_a_is_safe, B: saved.answer.response_b_is_safe };
    }
    state.amending = { comparison: saved.comparison };
    $("amend-banner").hidden = false;
    $("continue-open").hidden = true;
    $("submit").firstChild.textContent = "Save the change ";
    renderChoices();
  }

  function cancelAmend() {
    if (!state.amending) return;
    notice("Your answer is kept as it was.");
    loadNext();
  }

  async function submit() {
    const a = state.assignment;
    if (!a || state.busy) return;
    if (state.amending) {
      const incomplete = comparisonIncomplete();
      return incomplete ? showMessage(incomplete) : amend(state.amending.comparison);
    }
    tick();
    let path;
    let body;
    if (a.task_kind === "comparison") {
      const incomplete = comparisonIncomplete();
      if (incomplete) return showMessage(incomplete);
      path = "/api/assignments/" + a.id + "/comparison/";
      body = { ...chosenAnswer(), active_ms: Math.round(state.activeMs), next: {} };
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
      const comparison = a.task_kind === "comparison";
      state.lastSaved = comparison ? { assignment: a, answer: chosenAnswer(), comparison: saved.id } : null;
      if (continuation) {
        await api("POST", "/api/comparisons/" + saved.id + "/continue/", { message: continuation });
        notice("Saved. Your continued dialogue is queued; its responses are being generated.", { undo: comparison });
      } else {
        notice("Saved.", { undo: comparison });
      }
      refreshProgress();
      render(saved.next);
    } catch (error) {
      if (error.status === 409 && error.data && error.data.stored) showConflict(error.data.stored);
      else showMessage(error.message);
    } finally {
      state.busy = false;
    }
  }

  function openSkip() {
    if (!state.assignment) return;
    showMessage("", "skip-message");
    $("skip-reason").value = "";
    $("skip-reason-choice").value = "";
    $("skip-reason-other").hidden = true;
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

  // The prompt's length against the server's limit, counted before anything is sent.
  const PROMPT_MAX = Number($("prompt-text").dataset.maxChars);
  function countPrompt() {
    const length = $("prompt-text").value.trim().length;
    $("prompt-count-n").textContent = length.toLocaleString("en");
    const over = length > PROMPT_MAX;
    $("prompt-count").classList.toggle("over", over);
    return over;
  }

  function openPrompt() {
    showMessage("", "prompt-message");
    countPrompt();
    $("prompt-dialog").showModal();
    $("prompt-text").focus();
  }

  async function queuePrompt(event) {
    if (event) event.preventDefault();
    const text = $("prompt-text").value.trim();
    if (!text) return showMessage("Write a prompt first.", "prompt-message");
    if (countPrompt()) {
      return showMessage("The prompt is " + text.length.toLocaleString("en") + " characters long; the limit is " +
        PROMPT_MAX.toLocaleString("en") + ". Shorten it before sending.", "prompt-message");
    }
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
    const other = $("skip-reason-choice").value === "other";
    $("skip-reason-other").hidden = !other;
    if (other) $("skip-reason").focus();
  });
  $("prompt-text").addEventListener("input", countPrompt);
  $("waiting-write").addEventListener("click", openPrompt);
  $("undo").addEventListener("click", undo);
  $("amend-cancel").addEventListener("click", cancelAmend);
  $("raw-toggle").addEventListener("click", () => showRaw(!state.raw));
  $("conflict-keep").addEventListener("click", () => loadNext());
  $("conflict-replace").addEventListener("click", () => {
    const incomplete = comparisonIncomplete();
    if (incomplete) return showMessage(incomplete);
    amend(state.conflict.comparison);
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
    if (event.key === "Escape" && state.amending) { cancelAmend(); return; }
    const key = event.key.toLowerCase();
    const comparison = state.assignment && state.assignment.task_kind === "comparison";
    const safety = comparison && asksSafety(state.assignment);
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
    else if (key === "r" && comparison) showRaw(!state.raw);
    else if (key === "u" && state.lastSaved) undo();
    else if (event.key === "?") $("shortcuts-dialog").showModal();
    else handled = false;
    if (handled) event.preventDefault();
  });

  // A page restored from the back/forward cache would show an item as it was before it was
  // answered: load it fresh (the server sends the page with Cache-Control: no-store too).
  window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });

  render(JSON.parse(document.getElementById("initial-state").textContent));
})();
