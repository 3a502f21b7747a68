// Train panel of Foresight Console (ui/train_panel.py), fed by ui/train_routes.py. Loaded by
// Gradio only when the panel's accordion first opens; mount() is its js_on_load. It polls
// /api/train/status while a training runs (and once on mount, to follow one started before this
// page was opened), asking only for the losses it has not seen, and draws them with Plotly (loaded
// by the page head, ui/console.py). window.trainStats counts what was shown, for tests.
window.trainPanel = (() => {
  const POLL_MS = 1000;
  const LIVE = ["starting", "running"];
  const stats = window.trainStats = {statuses: 0, phase: null, plots: 0, points: 0, lastMessage: ""};
  const $ = (id) => document.getElementById(id);
  let options = null, polling = false, steps = [], losses = [], folder = null;

  async function getJSON(url, init) {
    const response = await fetch(url, {cache: "no-store", ...init});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    return body;
  }
  const post = (url, body) => getJSON(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});

  function say(text, failed = false) {
    $("train-message").textContent = text;
    $("train-message").parentElement.classList.toggle("failed", failed);
    stats.lastMessage = text;
  }

  async function loadOptions() {
    try {
      options = await getJSON("/api/train/options");
      fill($("train-dataset"), options.datasets.map((d) => [d.path, d.problem ? `${d.label} (unreadable)` :
        `${d.label} · ${d.episodes} episodes${d.version !== "v3.0" ? ` · ${d.version}` : ""}`]));
      fill($("train-base"), options.bases.map((b) => [b, b]), options.default_base);
      fill($("train-policy"), options.lerobot_policies.map((p) => [p, p]));
      if (!options.datasets.length) say(`No LeRobot dataset found in ${options.roots.join(", ")}.`);
      showKind();
    } catch (err) {
      say(`Training is unavailable: ${err.message}`, true);
    }
  }

  function fill(select, pairs, wanted) {
    const previous = wanted || select.value;
    select.replaceChildren(...pairs.map(([value, text]) => new Option(text, value)));
    if (pairs.some(([value]) => value === previous)) select.value = previous;
  }

  function showKind() {
    const finetune = $("train-kind").value === "finetune";
    $("train-base-label").style.display = finetune ? "" : "none";
    $("train-policy-label").style.display = finetune ? "none" : "";
  }

  async function start() {
    const body = {
      kind: $("train-kind").value, dataset: $("train-dataset").value, base: $("train-base").value,
      policy: $("train-policy").value, steps: Number($("train-steps").value || 1), batch_size: Number($("train-batch").value || 1),
    };
    try {
      await post("/api/train/start", body);
      follow();
    } catch (err) {
      say(err.message, true);  // refused: the running one (named), or the dataset's problem
    }
  }

  async function follow() {
    if (polling) return;
    polling = true;
    try {
      for (;;) {
        const status = await getJSON(`/api/train/status?since=${steps.length}`);
        render(status);
        if (!LIVE.includes(status.phase) && !(status.swap && status.swap.loading)) break;  // a hot swap is followed to its end
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    } catch (err) {
      say(`training: ${err.message}`, true);
    } finally {
      polling = false;
    }
  }

  function render(s) {
    stats.statuses += 1;
    stats.phase = s.phase;
    const live = LIVE.includes(s.phase);
    $("train-start").disabled = live;
    $("train-stop").disabled = !live;
    $("train-load").style.display = s.phase === "done" && s.kind === "finetune" && options && options.can_load ? "" : "none";
    if (s.phase === "idle") { say(s.message); return; }
    if (s.folder !== folder) { folder = s.folder; steps = []; losses = []; }  // another run: a new curve
    const progress = $("train-progress");
    progress.max = s.total || 1;
    progress.value = s.step;
    const parts = [s.phase, s.label, `step ${s.step} / ${s.total || "?"}`];
    if (s.loss !== null) parts.push(`loss ${s.loss.toPrecision(4)}`);
    if (live && s.steps_per_s) parts.push(`${s.steps_per_s.toFixed(2)} steps/s, ${eta((s.total - s.step) / s.steps_per_s)} left`);
    parts.push(s.message);
    say(parts.join(" · "), s.phase === "failed");
    $("train-error").textContent = s.error || "";
    const swap = s.swap && (s.swap.error || s.swap.message) ? ` · ${s.swap.error || s.swap.message}` : "";
    $("train-result").textContent = s.result ? `${s.kind === "finetune" ? "checkpoint" : "LeRobot policy"}: ${s.result}${swap}` : "";
    if (s.new_points.length) {
      s.new_points.forEach(([step, loss]) => { steps.push(step); losses.push(loss); });
      plot(s.label);
    }
  }

  function eta(seconds) {
    if (!isFinite(seconds)) return "?";
    return seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
  }

  function plot(title) {
    if (!window.Plotly) return;
    // New arrays each time: Plotly.react redraws only data it sees change.
    window.Plotly.react("train-loss-plot", [{x: [...steps], y: [...losses], mode: "lines+markers", marker: {size: 4}, name: "loss",
                                             line: {color: "#2563eb"}}], {
      title: {text: `Training loss: ${title}`, font: {size: 13}}, height: 280, margin: {l: 60, r: 10, t: 30, b: 40},
      xaxis: {title: {text: "step"}}, yaxis: {title: {text: "loss"}, type: "log"},
    }, {displayModeBar: false, responsive: true});
    stats.plots += 1;
    stats.points = steps.length;
  }

  async function load() {
    try {
      const answer = await post("/api/train/load");
      say(`Loading ${answer.checkpoint} into the console: the robot holds; press Run to continue with it.`);
      follow();
    } catch (err) {
      say(err.message, true);
    }
  }

  return {
    mount(element) {
      element.querySelector("#train-kind").addEventListener("change", showKind);
      element.querySelector("#train-start").addEventListener("click", start);
      element.querySelector("#train-stop").addEventListener("click", () => post("/api/train/stop").catch((err) => say(err.message, true)));
      element.querySelector("#train-load").addEventListener("click", load);
      element.querySelector("#train-refresh").addEventListener("click", loadOptions);
      loadOptions();
      follow();  // shows a training started before this page was opened (or reloaded)
    },
  };
})();
