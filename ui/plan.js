// Plan views for Foresight Console (ui/plan_panel.py, routes in ui/plan_routes.py).
// The chart: every PLAN_PERIOD_MS while the page is visible, /api/plan gives the running chunk, the one
// before it and the commands sent; per action dimension the plan is a line by tick (the previous chunk
// faded), the commands sent are dots, and the executed part of the chunk is shaded.
// The dry-run cards follow /api/dry_run (polled). window.planStats counts for tests.
(() => {
  const PLAN_PERIOD_MS = 250;
  const DRY_RUN_POLL_MS = 1000;
  const DRY_RUN_PENDING_POLL_MS = 150;
  const COLOURS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];
  const stats = window.planStats = {plots: 0, chunkId: null, executed: 0, dryRunStates: 0, cards: 0};
  const $ = (id) => document.getElementById(id);
  let drawn = "";  // "chunk id / tick" on the chart

  function ticksOf(chunk) {
    return chunk.actions.map((_, i) => chunk.obs_tick + 1 + i);  // step i runs at tick obs_tick + 1 + i
  }

  function planTraces(plan) {
    const traces = [];
    plan.keys.forEach((key, d) => {
      const colour = COLOURS[d % COLOURS.length];
      if (plan.previous) traces.push({x: ticksOf(plan.previous), y: plan.previous.actions.map((a) => a[d]),
        name: `${key} previous`, mode: "lines", line: {color: colour, width: 1, dash: "dot"}, opacity: 0.35,
        showlegend: false, hoverinfo: "skip"});
      traces.push({x: ticksOf(plan.chunk), y: plan.chunk.actions.map((a) => a[d]), name: key, mode: "lines",
                   line: {color: colour, width: 2}});
      traces.push({x: plan.sent.ticks, y: plan.sent.commands.map((c) => c[d]), name: `${key} sent`,
                   mode: "markers", marker: {color: colour, size: 4}, showlegend: false});
    });
    return traces;
  }

  async function drawPlan() {
    if (!window.Plotly || document.hidden || !$("plan-plot")) return;
    let plan;
    try {
      plan = await (await fetch("/api/plan", {cache: "no-store"})).json();
    } catch (err) {
      return;  // the next period tries again
    }
    if (!plan.chunk) {
      $("plan-message").textContent = `No chunk is running (${plan.mode}).`;
      return;
    }
    const key = `${plan.chunk.chunk_id}/${plan.tick}`;
    if (key === drawn) return;
    drawn = key;
    const executed = Math.max(0, Math.min(plan.chunk.actions.length, plan.tick - plan.chunk.obs_tick));
    $("plan-message").textContent = `chunk ${plan.chunk.chunk_id} from tick ${plan.chunk.obs_tick}: ` +
      `${executed} of ${plan.chunk.actions.length} steps executed, ${plan.queue_depth} left`;
    const first = plan.chunk.obs_tick + 1;
    window.Plotly.react("plan-plot", planTraces(plan), {
      margin: {l: 50, r: 10, t: 10, b: 40}, height: 320, uirevision: "keep",
      xaxis: {title: {text: "control tick (shaded: steps of this chunk already executed)"}},
      yaxis: {title: {text: "command (rad / gripper)"}},
      shapes: [{type: "rect", xref: "x", yref: "paper", x0: first - 0.5, x1: first - 0.5 + executed, y0: 0, y1: 1,
                fillcolor: "#9ca3af", opacity: 0.2, line: {width: 0}}],
      legend: {orientation: "h", y: -0.2, font: {size: 10}},
    }, {displayModeBar: false, responsive: true});
    stats.plots += 1;
    stats.chunkId = plan.chunk.chunk_id;
    stats.executed = executed;
  }

  function card(preview, cameras, keys) {
    const div = document.createElement("div");
    div.className = preview.error ? "dry-run failed" : "dry-run";
    div.dataset.previewId = preview.id;
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = preview.error
      ? `“${preview.instruction}”: failed: ${preview.error}`
      : `“${preview.instruction}” · from tick ${preview.obs_tick} · ${preview.latency_ms.toFixed(0)} ms`;
    div.appendChild(title);
    const pictures = document.createElement("div");
    pictures.className = "pictures";
    for (const camera of cameras) {
      const drawn = preview.plan_cameras.includes(camera);
      const sources = [[drawn ? "plan" : "frame", drawn ? `${camera} · plan` : `${camera} · now`]];
      if (preview.foresight_cameras.includes(camera)) sources.push(["foresight", `${camera} · foresight`]);
      for (const [kind, caption] of sources) {
        const figure = document.createElement("figure");
        const img = document.createElement("img");
        img.src = `/dry_run/${preview.id}/${camera}/${kind}.jpg`;
        img.alt = caption;
        figure.appendChild(img);
        const cap = document.createElement("figcaption");
        cap.textContent = caption;
        figure.appendChild(cap);
        pictures.appendChild(figure);
      }
    }
    div.appendChild(pictures);
    if (preview.actions) {
      const chart = document.createElement("div");
      chart.className = "chart";
      div.appendChild(chart);
      const steps = preview.actions.map((_, i) => i + 1);
      const traces = keys.map((key, d) => ({x: steps, y: preview.actions.map((a) => a[d]), name: key, mode: "lines",
                                            line: {color: COLOURS[d % COLOURS.length], width: 1.5}}));
      // Drawn once the card is on the page: Plotly sizes a chart by its container's width then.
      div.drawChart = () => window.Plotly && window.Plotly.newPlot(chart, traces, {
        margin: {l: 40, r: 5, t: 5, b: 30}, height: 220, showlegend: false,
        xaxis: {title: {text: "plan step"}}}, {displayModeBar: false, responsive: true});
      const run = document.createElement("button");
      run.textContent = "▶ Run this";
      run.className = "dry-run-run";
      run.onclick = () => fetch(`/api/dry_run/${preview.id}/run`, {method: "POST"});
      div.appendChild(run);
    }
    const discard = document.createElement("button");
    discard.textContent = "✕ Discard dry runs";
    discard.className = "dry-run-discard";
    discard.onclick = () => fetch("/api/dry_run/discard", {method: "POST"});
    div.appendChild(discard);
    return div;
  }

  function showDryRuns(state) {
    stats.dryRunStates += 1;
    const holder = $("dry-runs");
    const cards = state.previews.map((p) => card(p, state.cameras, state.keys));
    holder.replaceChildren(...cards);
    const drawAll = () => cards.forEach((c) => c.drawChart && c.drawChart());
    window.Plotly ? drawAll() : window.addEventListener("load", drawAll);
    stats.cards = state.previews.length;
    $("dry-run-message").textContent = state.pending
      ? `Computing a dry run of “${state.pending}”…`
      : (state.previews.length ? "" : "Type an instruction and press Dry run (the robot must be idle or paused).");
  }

  // Polled, not long-polled: Chromium allows 6 connections per host and the camera feeds, Gradio
  // and the foresight long-poll hold 5. While a dry run is being computed, polled faster.
  async function followDryRuns() {
    let version = -1;
    for (;;) {
      let pending = false;
      try {
        const response = await fetch("/api/dry_run", {cache: "no-store"});
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const state = await response.json();
        if (state.version !== version) showDryRuns(state);
        version = state.version;
        pending = state.pending !== null;
      } catch (err) {
        $("dry-run-message").textContent = `dry runs: reconnecting (${err.message})`;
      }
      await new Promise((r) => setTimeout(r, pending ? DRY_RUN_PENDING_POLL_MS : DRY_RUN_POLL_MS));
    }
  }

  // Gradio renders the page after this script runs: start once the panel appears.
  const waitForPanel = setInterval(() => {
    if (!$("plan")) return;
    clearInterval(waitForPanel);
    setInterval(drawPlan, PLAN_PERIOD_MS);
    followDryRuns();
  }, 200);
})();
