// Foresight panel for Foresight Console (ui/foresight_panel.py). A long-poll on /api/foresight
// answers the moment an inference lands, with the new foresight JPEGs (and the reckoning JPEGs
// when a prediction has been judged) inside as data URLs: one round trip per change. The live picture beside each foresight mirrors
// the camera feed's <img> (no second stream: Chromium allows 6 connections per host). The PSNR
// chart re-reads /api/foresight/history at most once a second, and only after a new reckoning.
// window.foresightStats holds counts and picture latencies for tests and benchmarks.
(() => {
  const PLOT_PERIOD_MS = 1000;   // chart refresh, at most
  const RETRY_MS = 1000;         // wait after a failed long-poll
  const MAX_LATENCIES = 500;     // latency samples kept in window.foresightStats
  const COLOURS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"];
  const stats = window.foresightStats = {
    states: 0, version: -1, available: null, foresightVersion: -1, pictures: 0, reckonings: 0,
    latenciesMs: [], plots: 0, lastMessage: "",
  };
  const $ = (id) => document.getElementById(id);
  let plotDirty = true;

  // The live picture: show each feed frame again once it has decoded.
  function mirrorLive(camera) {
    const feed = $(`feed-${camera}`), live = $(`fs-live-${camera}`);
    if (feed && live) feed.addEventListener("load", () => { live.src = feed.src; });
  }

  function loadPicture(img, url) {
    return new Promise((resolve) => {
      img.onload = () => resolve(true);
      img.onerror = () => resolve(false);
      img.src = url;
    });
  }

  async function showForesight(state, cameras) {
    const loads = cameras.map((camera) => {
      const img = $(`fs-pred-${camera}`);
      const caption = $(`fs-pred-cap-${camera}`);
      const has = state.cameras.includes(camera);
      if (caption) caption.textContent = has
        ? `${camera} · foresight t+${state.horizon} (from tick ${state.obs_tick})`
        : `${camera} · no foresight for this camera`;
      if (!img || !has) return Promise.resolve(false);
      const url = (state.pictures && state.pictures[camera]) || `/foresight/${camera}.jpg?v=${state.foresight_version}`;
      return loadPicture(img, url);
    });
    const loaded = await Promise.all(loads);
    if (loaded.some(Boolean) && state.done_time) {
      stats.pictures += 1;
      stats.latenciesMs.push(Date.now() - state.done_time * 1000);  // inference landed -> pictures shown
      if (stats.latenciesMs.length > MAX_LATENCIES) stats.latenciesMs.shift();
    }
  }

  const shown = {};  // camera -> reckoning id on screen
  function showReckonings(state) {
    for (const [camera, r] of Object.entries(state.reckonings)) {
      if (shown[camera] === r.id) continue;
      shown[camera] = r.id;
      const img = $(`fs-reck-${camera}`), caption = $(`fs-reck-cap-${camera}`);
      if (img) img.src = (state.reckoning_pictures && state.reckoning_pictures[camera]) || `/foresight/${camera}/reckoning.jpg?v=${r.id}`;
      const gain = r.psnr_db - r.baseline_psnr_db;
      const verdict = gain > 0 ? "model beats a still picture" : "a still picture does as well";
      if (caption) caption.textContent =
        `predicted at ${r.obs_tick} | actual ${r.target_tick} | difference · PSNR ${r.psnr_db.toFixed(1)} dB ` +
        `vs still ${r.baseline_psnr_db.toFixed(1)} dB (${verdict})`;
      stats.reckonings += 1;
      plotDirty = true;
    }
  }

  async function apply(state, cameras) {
    stats.states += 1;
    stats.version = state.version;
    stats.available = state.available;
    const message = [state.message, state.problem].filter(Boolean).join(" ");
    stats.lastMessage = message;
    $("foresight-message").textContent = message;
    const hide = state.available === false;  // a policy without foresight: the message alone
    $("foresight-cams").style.display = hide ? "none" : "";
    $("foresight-plot").style.display = hide ? "none" : "";
    $("foresight-note").textContent = hide ? "" : state.latent_note;
    showReckonings(state);
    if (state.available && state.foresight_version !== stats.foresightVersion) {
      stats.foresightVersion = state.foresight_version;
      showForesight(state, cameras);  // not awaited: the next long-poll starts at once
    }
  }

  async function follow(cameras) {
    let version = -1;
    for (;;) {
      try {
        // The pictures come inside the answer: no request per picture.
        const response = await fetch(`/api/foresight?after=${version}&pictures=1`, {cache: "no-store"});
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const state = await response.json();
        version = state.version;
        await apply(state, cameras);
      } catch (err) {
        $("foresight-message").textContent = `foresight: reconnecting (${err.message})`;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  function traces(history, key, label) {
    const out = [];
    Object.entries(history.cameras).forEach(([camera, h], i) => {
      const colour = COLOURS[i % COLOURS.length];
      out.push({x: h.target_tick, y: h[key], name: `${camera} ${label}`, mode: "lines+markers",
                line: {color: colour}, marker: {size: 5}});
      out.push({x: h.target_tick, y: h[`baseline_${key}`], name: `${camera} still (frame t copied)`, mode: "lines",
                line: {color: colour, dash: "dash", width: 1.5}});
    });
    out.push({x: history.inference_ticks, y: history.inference_ticks.map(() => 0), yaxis: "y2", name: "inference (made at)",
              mode: "markers", marker: {symbol: "triangle-up", size: 8, color: "#6b7280"}, hoverinfo: "x"});
    return out;
  }

  function layout(title, yTitle) {
    return {
      title: {text: title, font: {size: 13}}, margin: {l: 50, r: 10, t: 30, b: 40}, height: 300,
      xaxis: {title: {text: "control tick (a point is judged at t+horizon; ▲ = an inference made at t)"}},
      yaxis: {title: {text: yTitle}}, yaxis2: {overlaying: "y", range: [0, 1], visible: false, fixedrange: true},
      legend: {orientation: "h", y: -0.25, font: {size: 10}}, uirevision: "keep",
    };
  }

  async function plot() {
    if (!plotDirty || !window.Plotly || $("foresight-plot").style.display === "none") return;
    plotDirty = false;
    try {
      const history = await (await fetch("/api/foresight/history", {cache: "no-store"})).json();
      const config = {displayModeBar: false, responsive: true};
      window.Plotly.react("foresight-plot", traces(history, "psnr_db", "model"),
        layout(`Foresight PSNR per camera (higher is better), horizon ${history.horizon} ticks`, "PSNR (dB)"), config);
      const hasLatent = Object.values(history.cameras).some((h) => h.latent_l2.some((v) => v !== null));
      const latentDiv = $("foresight-latent-plot");
      latentDiv.style.display = hasLatent ? "" : "none";
      if (hasLatent) window.Plotly.react(latentDiv, traces(history, "latent_l2", "model"),
        layout("Foresight latent L2 per camera (lower is better)", "latent RMS distance"), config);
      stats.plots += 1;
    } catch (err) {
      plotDirty = true;  // try again next period
    }
  }

  // Gradio renders the page after this script runs: start once the panel appears.
  const waitForPanel = setInterval(() => {
    const panel = $("foresight");
    if (!panel) return;
    clearInterval(waitForPanel);
    const cameras = [...panel.querySelectorAll("[data-foresight-camera]")].map((el) => el.dataset.foresightCamera);
    cameras.forEach(mirrorLive);
    follow(cameras);
    setInterval(plot, PLOT_PERIOD_MS);
  }, 200);
})();
