// Open-loop replay panel of Foresight Console (ui/replay_panel.py), fed by ui/replay_routes.py.
// Loaded by Gradio only when the panel's accordion first opens; mount() is its js_on_load. It polls
// /api/replay/status only while a replay is opening or running, re-reads the per-step series at
// most once a second meanwhile (and once at the end), and fetches a foresight picture only when a
// new one has been judged. Plotly comes from the page head (ui/console.py).
// window.replayStats counts what was shown, for tests.
window.replayPanel = (() => {
  const POLL_MS = 500;       // status refresh while a replay runs
  const SERIES_MS = 1000;    // chart refresh while a replay runs, at most
  const PLOT_COLUMNS = 4;    // action dimensions per row of the predicted-vs-recorded grid
  const PLOT_ROW_PX = 170;
  const MAX_TICKS = 10;      // step axes: whole steps, at most this many labels
  const FINISHED = ["done", "cancelled", "failed"];
  const COLOURS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"];
  const stats = window.replayStats = {statuses: 0, phase: null, pictures: 0, plots: 0, lastMessage: ""};
  const $ = (id) => document.getElementById(id);
  let datasets = [], policy = null, polling = false, seriesAt = 0, shown = {};

  async function getJSON(url, options) {
    const response = await fetch(url, {cache: "no-store", ...options});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    return body;
  }

  function say(text, failed = false) {
    $("replay-message").textContent = text;
    $("replay-message").parentElement.classList.toggle("failed", failed);
    stats.lastMessage = text;
  }

  async function loadDatasets() {
    try {
      const answer = await getJSON("/api/replay/datasets");
      datasets = answer.datasets;
      policy = answer.policy;
      if (!$("replay-cameras").value) $("replay-cameras").value = answer.default_cameras;
      const select = $("replay-dataset"), previous = select.value;
      select.replaceChildren(...datasets.map((d) => new Option(d.problem ? `${d.label} (unreadable)` : d.label, d.path)));
      if (datasets.some((d) => d.path === previous)) select.value = previous;
      if (!datasets.length) say(`No LeRobot dataset found in ${answer.roots.join(", ")} (add folders with --replay-root).`);
      showDataset();
    } catch (err) {
      say(`Open-loop replay is unavailable: ${err.message}`, true);
    }
  }

  // The chosen dataset's episodes, and its cameras beside the policy's (the mapping to type).
  function showDataset() {
    const d = datasets.find((x) => x.path === $("replay-dataset").value);
    const episodes = $("replay-episode");
    if (!d) { episodes.replaceChildren(); $("replay-info").textContent = ""; return; }
    episodes.replaceChildren(...Array.from({length: d.episodes || 0}, (_, i) => new Option(`${i}`, `${i}`)));
    $("replay-info").textContent = d.problem ? d.problem :
      `${d.version} · ${d.fps} fps · ${d.episodes} episodes · robot ${d.robot_type || "?"} · cameras ${d.cameras.join(", ")}` +
      ` — the policy reads ${policy.cameras.join(", ")} at ${policy.fps} fps` +
      (d.version === "v2.1" ? " · converted to v3.0 on first replay (cached; the folder is not touched)" : "");
  }

  async function start() {
    const max = $("replay-max").value;
    const body = {
      dataset: $("replay-dataset").value, episode: Number($("replay-episode").value || 0),
      cameras: $("replay-cameras").value, infer_every: Number($("replay-every").value || 1),
      max_steps: max ? Number(max) : null, instruction: $("replay-instruction").value,
    };
    try {
      await getJSON("/api/replay/start", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
      shown = {};
      $("replay-pictures").replaceChildren();  // the previous replay's results go
      $("replay-metrics").replaceChildren();
      ["replay-actions-plot", "replay-psnr-plot"].forEach((id) => window.Plotly && window.Plotly.purge(id));
      follow();
    } catch (err) {
      say(err.message, true);
    }
  }

  async function follow() {
    if (polling) return;
    polling = true;
    try {
      for (;;) {
        const status = await getJSON("/api/replay/status");
        render(status);
        const finished = status.phase === "idle" || FINISHED.includes(status.phase);
        if (status.total_steps && (finished || Date.now() - seriesAt > SERIES_MS)) {
          seriesAt = Date.now();
          plot(await getJSON("/api/replay/series"), status);
        }
        if (finished) break;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    } catch (err) {
      say(`replay: ${err.message}`, true);
    } finally {
      polling = false;
    }
  }

  function render(s) {
    stats.statuses += 1;
    stats.phase = s.phase;
    const running = s.phase === "opening" || s.phase === "running";
    $("replay-start").disabled = running;
    $("replay-stop").disabled = !running;
    $("replay-download").style.visibility = s.phase === "idle" ? "hidden" : "visible";
    const progress = $("replay-progress");
    progress.max = s.total_steps || 1;
    progress.value = s.step || 0;
    if (s.phase === "idle") { say(s.message); return; }
    const parts = [s.phase, `episode ${s.episode}`];
    if (s.total_steps) parts.push(`step ${s.step} / ${s.total_steps}`);
    if (s.stride > 1) parts.push(`1 frame in ${s.stride} (${s.dataset_fps} fps recording)`);
    if (s.instruction) parts.push(`"${s.instruction}"`);
    say([...parts, s.message].join(" · "), s.phase === "failed");
    if (s.total_steps) renderMetrics(s);
    renderPictures(s);
  }

  const stepTick = (steps) => Math.max(1, Math.ceil(steps / MAX_TICKS));
  const number = (v, digits) => (v === null || v === undefined ? "–" : v.toFixed(digits));

  function renderMetrics(s) {
    const m = s.metrics;
    const rows = [
      `<tr><th>actions (${s.inferences} inferences)</th><th>MSE</th><th></th><th></th></tr>`,
      `<tr><td>whole chunk vs recorded</td><td>${number(m.action_mse, 5)}</td><td></td><td></td></tr>`,
      `<tr><td>executed steps vs recorded</td><td>${number(m.action_mse_executed, 5)}</td><td></td><td></td></tr>`,
      `<tr><th>foresight t+${s.horizon ?? "H"} (per camera)</th><th>PSNR model</th><th>copy frame t</th><th>judged</th></tr>`,
    ];
    for (const [camera, f] of Object.entries(m.foresight)) {
      const source = s.cameras[camera] && s.cameras[camera] !== camera ? ` (${s.cameras[camera]})` : "";
      rows.push(`<tr><td>${camera}${source}</td><td>${number(f.psnr_db, 2)} dB</td>` +
                `<td>${number(f.baseline_psnr_db, 2)} dB</td><td>${f.judged}</td></tr>`);
    }
    if (!Object.keys(m.foresight).length) rows.push("<tr><td>no camera is judged</td><td></td><td></td><td></td></tr>");
    $("replay-metrics").innerHTML = rows.join("");
  }

  function renderPictures(s) {
    const box = $("replay-pictures");
    for (const [camera, id] of Object.entries(s.reckoning_ids || {})) {
      if (shown[camera] === id) continue;
      shown[camera] = id;
      let figure = box.querySelector(`[data-camera="${camera}"]`);
      if (!figure) {
        figure = document.createElement("figure");
        figure.dataset.camera = camera;
        figure.innerHTML = `<img id="replay-reck-${camera}" alt="${camera} foresight"><figcaption></figcaption>`;
        box.appendChild(figure);
      }
      figure.querySelector("img").src = `/replay/${camera}/reckoning.jpg?v=${id}`;
      figure.querySelector("figcaption").textContent =
        `${camera}: predicted t+${s.horizon} | recorded t+${s.horizon} | difference`;
      stats.pictures += 1;
    }
  }

  function plot(series, s) {
    if (!window.Plotly) return;
    const config = {displayModeBar: false, responsive: true};
    const keys = series.action_keys, rows = Math.ceil(keys.length / PLOT_COLUMNS);
    const traces = [], annotations = [], layoutAxes = {};
    keys.forEach((key, d) => {
      const axis = d === 0 ? "" : `${d + 1}`;
      layoutAxes[`xaxis${axis}`] = {dtick: stepTick(series.steps.length)};
      traces.push({x: series.steps, y: series.recorded.map((r) => r[d]), xaxis: `x${axis}`, yaxis: `y${axis}`,
                   mode: "lines", line: {color: "#6b7280", width: 1.5}, name: "recorded", legendgroup: "recorded", showlegend: d === 0});
      traces.push({x: series.steps, y: series.predicted.map((r) => r[d]), xaxis: `x${axis}`, yaxis: `y${axis}`,
                   mode: "lines", line: {color: "#2563eb", width: 1.5}, name: "predicted (executed steps)",
                   legendgroup: "predicted", showlegend: d === 0});
      const mse = s.metrics.action_mse_executed_per_dim[key];
      annotations.push({text: `${key} · MSE ${number(mse, 4)}`, xref: `x${axis} domain`, yref: `y${axis} domain`,
                        x: 0, y: 1.18, showarrow: false, xanchor: "left", font: {size: 10}});
    });
    window.Plotly.react("replay-actions-plot", traces, {
      title: {text: "Actions: predicted against recorded, per dimension (x: replay step)", font: {size: 13}, x: 0.01, xanchor: "left"},
      grid: {rows, columns: PLOT_COLUMNS, pattern: "independent", ygap: 0.35}, annotations, ...layoutAxes,
      height: rows * PLOT_ROW_PX + 90, margin: {l: 40, r: 10, t: 80, b: 30},
      legend: {orientation: "h", x: 1, xanchor: "right", y: 1, yanchor: "top", yref: "container", font: {size: 11}},
    }, config);
    const psnr = [];
    Object.entries(series.foresight).forEach(([camera, f], i) => {
      const colour = COLOURS[i % COLOURS.length];
      psnr.push({x: f.step, y: f.psnr_db, name: `${camera} model`, mode: "lines+markers", line: {color: colour}, marker: {size: 4}});
      psnr.push({x: f.step, y: f.baseline_psnr_db, name: `${camera} copy frame t`, mode: "lines",
                 line: {color: colour, dash: "dash", width: 1.5}});
    });
    $("replay-psnr-plot").style.display = psnr.length ? "" : "none";
    if (psnr.length) window.Plotly.react("replay-psnr-plot", psnr, {
      title: {text: `Foresight PSNR against the recorded frame t+${s.horizon} (higher is better)`, font: {size: 13}},
      height: 260, margin: {l: 50, r: 10, t: 30, b: 40},
      xaxis: {title: {text: "replay step t the prediction was made at"}, dtick: stepTick(s.total_steps)},
      yaxis: {title: {text: "PSNR (dB)"}}, legend: {orientation: "h", y: -0.3, font: {size: 10}},
    }, config);
    stats.plots += 1;
  }

  return {
    mount(element) {
      element.querySelector("#replay-dataset").addEventListener("change", showDataset);
      element.querySelector("#replay-start").addEventListener("click", start);
      element.querySelector("#replay-stop").addEventListener("click", () => getJSON("/api/replay/stop", {method: "POST"}).catch((err) => say(err.message, true)));
      element.querySelector("#replay-refresh").addEventListener("click", loadDatasets);
      loadDatasets();
      follow();  // shows a replay started before this page was opened (or reloaded)
    },
  };
})();
