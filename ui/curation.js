// Dataset curation panel of Foresight Console (ui/curation_panel.py), fed by ui/curation_routes.py.
// Loaded by Gradio when the panel's accordion first opens; mount() is its js_on_load. While the
// panel is shown it polls the chosen dataset's episode list (the server answers "unchanged" until
// the recorder saves an episode or an edit lands) and the running edit. Thumbnails load lazily;
// the player steps an <img> through /curation/frame.jpg at the dataset's fps.
// window.curationStats counts what was shown, for tests.
window.curationPanel = (() => {
  const POLL_MS = 1500;
  const stats = window.curationStats = {lists: 0, frames: 0, lastStatus: ""};
  const $ = (id) => document.getElementById(id);
  let datasets = [], table = null, version = "", selected = new Set(), lastResult = 0, playing = null;

  async function getJSON(url, options) {
    const response = await fetch(url, {cache: "no-store", ...options});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    return body;
  }
  const post = (url, body) => getJSON(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const dataset = () => $("curation-dataset").value;
  const query = (params) => new URLSearchParams(params).toString();

  function status(text, kind = "") {
    const line = $("curation-status");
    line.textContent = text;
    line.className = `curation-status ${kind}`;
    stats.lastStatus = text;
  }

  async function loadDatasets() {
    try {
      const answer = await getJSON("/api/curation/datasets");
      datasets = answer.datasets;
      const select = $("curation-dataset"), previous = select.value;
      const label = (d) => `${d.live ? "● " : ""}${d.label} — ${d.problem ? d.problem : `${d.episodes} episodes`}`;
      select.replaceChildren(...datasets.map((d) => new Option(label(d), d.path)));
      if (datasets.some((d) => d.path === previous)) select.value = previous;
      $("curation-merge-other").replaceChildren(...datasets.filter((d) => !d.problem).map((d) => new Option(d.label, d.path)));
      if (!datasets.length) $("curation-summary").textContent = `No LeRobot dataset in ${answer.roots.join(", ")}.`;
      showEdit(answer);
      if (previous !== select.value) { version = ""; selected.clear(); }
      await loadEpisodes();
    } catch (err) {
      status(`Datasets unavailable: ${err.message}`, "failed");
    }
  }

  function showEdit(answer) {
    const busy = Boolean(answer.editing);
    document.querySelectorAll("#curation button").forEach((b) => { if (b.id !== "curation-play") b.disabled = busy; });
    if (busy) status(`Working: ${answer.editing}…`, "busy");
    else if (answer.last && answer.last.number !== lastResult) {
      lastResult = answer.last.number;
      status(`${answer.last.message} (${answer.last.seconds} s)`, answer.last.ok ? "" : "failed");
    }
  }

  async function loadEpisodes() {
    if (!dataset()) { $("curation-table").replaceChildren(); return; }
    try {
      const answer = await getJSON(`/api/curation/episodes?${query({dataset: dataset(), since: version})}`);
      if (answer.unchanged) return;
      table = answer; version = answer.version; stats.lists += 1;
      selected = new Set([...selected].filter((i) => i < table.episodes.length));
      render();
    } catch (err) {
      table = null; version = "";
      $("curation-table").replaceChildren();
      $("curation-summary").textContent = err.message;
    }
  }

  function render() {
    const e = table.episodes, count = (o) => e.filter((x) => x.outcome === o).length;
    const shares = e.filter((x) => x.operator_share !== null);
    const share = shares.length ? `${Math.round(100 * shares.reduce((s, x) => s + x.operator_share, 0) / shares.length)}% operator frames (mean)` : "operator share unknown";
    $("curation-summary").textContent = `${e.length} episodes · ${e.reduce((s, x) => s + x.frames, 0)} frames · ` +
      `${count("success")} success, ${count("failure")} failure, ${count("unknown")} unknown · ${share} · ` +
      `${e.filter((x) => x.flagged).length} flagged · ${table.fps} fps · cameras ${table.cameras.join(", ")}` +
      (table.live ? " · the session records into this dataset: edits wait for the episode in progress" : "");
    const head = document.createElement("tr");
    head.innerHTML = "<th><input type='checkbox' id='curation-all' title='select all'></th><th></th><th>#</th><th>task</th><th>frames</th><th>outcome</th><th>operator</th><th></th>";
    const rows = e.map((x) => {
      const row = document.createElement("tr");
      row.id = `curation-episode-${x.index}`;
      row.className = `${x.flagged ? "flagged" : ""} ${playing && playing.episode === x.index ? "playing" : ""}`;
      const thumb = `/curation/thumb.jpg?${query({dataset: table.dataset, episode: x.index, v: version})}`;
      const share = x.operator_share === null ? "?" : `${Math.round(100 * x.operator_share)}%`;
      row.innerHTML = `<td><input type='checkbox' class='curation-pick' ${selected.has(x.index) ? "checked" : ""}></td>` +
        `<td><img loading='lazy' src='${thumb}' alt='episode ${x.index}'></td><td>${x.index}</td>` +
        `<td class='curation-task'></td><td>${x.frames}</td><td class='outcome-${x.outcome}'>${x.outcome}</td><td>${share}</td>` +
        `<td><button class='curation-play-episode' title='play'>▶</button> <button class='curation-flag' title='flag / unflag'>${x.flagged ? "⚑" : "⚐"}</button> ` +
        `<button class='curation-relabel' title='change the task'>✎</button> <button class='curation-delete' title='delete (a backup is kept)'>✕</button></td>`;
      row.querySelector(".curation-task").textContent = x.task;
      row.querySelector(".curation-pick").addEventListener("change", (ev) => { ev.target.checked ? selected.add(x.index) : selected.delete(x.index); showSelected(); });
      row.querySelector(".curation-play-episode").addEventListener("click", () => play(x.index));
      row.querySelector(".curation-flag").addEventListener("click", () => flag(x.index, !x.flagged));
      row.querySelector(".curation-relabel").addEventListener("click", () => relabel(x));
      row.querySelector(".curation-delete").addEventListener("click", () => edit("/api/curation/delete", {dataset: table.dataset, episodes: [x.index]}));
      return row;
    });
    $("curation-table").replaceChildren(head, ...rows);
    $("curation-all").addEventListener("change", (ev) => { selected = ev.target.checked ? new Set(e.map((x) => x.index)) : new Set(); render(); });
    showSelected();
  }

  function showSelected() {
    const picked = [...selected].sort((a, b) => a - b);
    $("curation-selected").textContent = picked.length ? picked.join(", ") : "none";
  }

  async function flag(episode, flagged) {
    try { status((await post("/api/curation/flag", {dataset: table.dataset, episode, flagged})).message); await loadEpisodes(); }
    catch (err) { status(err.message, "failed"); }
  }

  function relabel(x) {
    const task = window.prompt(`New task for episode ${x.index}:`, x.task);
    if (task !== null) edit("/api/curation/relabel", {dataset: table.dataset, episode: x.index, task});
  }

  async function edit(url, body) {
    try {
      await post(url, body);
      status("Working…", "busy");
      selected.clear();
      await loadDatasets();
    } catch (err) {
      status(err.message, "failed");
    }
  }

  // --- the player --------------------------------------------------------------------------
  function play(episode) {
    const x = table.episodes[episode];
    const cameras = $("curation-camera");
    if (!cameras.options.length || cameras.dataset.for !== table.dataset) {
      cameras.replaceChildren(...table.cameras.map((c) => new Option(c, c)));
      cameras.dataset.for = table.dataset;
    }
    stop();
    playing = {dataset: table.dataset, episode, frames: x.frames, fps: table.fps, position: 0, timer: null, playing: false};
    $("curation-seek").max = String(x.frames - 1);
    $("curation-player-title").textContent = `Episode ${episode}: ${x.task} (${x.outcome})`;
    document.querySelectorAll("#curation-table tr.playing").forEach((r) => r.classList.remove("playing"));
    const row = $(`curation-episode-${episode}`); if (row) row.classList.add("playing");
    resume();
  }

  // `shown` runs once the frame is on screen (or failed), so playback never outruns the server.
  function show(position, shown = () => {}) {
    if (!playing) return;
    playing.position = position;
    $("curation-seek").value = String(position);
    $("curation-position").textContent = `${position + 1}/${playing.frames}`;
    const img = $("curation-frame");
    img.onload = () => { stats.frames += 1; shown(); };
    img.onerror = shown;
    img.src = `/curation/frame.jpg?${query({dataset: playing.dataset, episode: playing.episode, camera: $("curation-camera").value, i: position, v: version})}`;
  }

  // Plays at the dataset's fps, but waits for each frame: a slow decode slows playback
  // instead of skipping frames (a newer src would cancel the frame still loading).
  function resume() {
    if (!playing) return;
    if (playing.position >= playing.frames - 1) playing.position = 0;
    $("curation-play").textContent = "❚❚ Pause";
    const run = playing;
    const step = () => {
      run.timer = null;
      const started = performance.now();
      show(run.position, () => {
        if (playing !== run || !run.playing) return;  // paused, or another episode started
        if (run.position >= run.frames - 1) { stop(); return; }
        run.position += 1;
        run.timer = setTimeout(step, Math.max(0, 1000 / run.fps - (performance.now() - started)));
      });
    };
    run.playing = true;
    step();
  }

  function stop() {
    if (playing) {
      playing.playing = false;
      if (playing.timer) { clearTimeout(playing.timer); playing.timer = null; }
    }
    $("curation-play").textContent = "▶ Play";
  }

  return {
    mount(element) {
      element.querySelector("#curation-dataset").addEventListener("change", () => { version = ""; selected.clear(); stop(); loadEpisodes(); });
      element.querySelector("#curation-rescan").addEventListener("click", loadDatasets);
      element.querySelector("#curation-undo").addEventListener("click", () => edit("/api/curation/undo", {dataset: dataset()}));
      element.querySelector("#curation-delete-selected").addEventListener("click", () => edit("/api/curation/delete", {dataset: dataset(), episodes: [...selected]}));
      element.querySelector("#curation-export").addEventListener("click", () => edit("/api/curation/export", {dataset: dataset(), episodes: [...selected], name: $("curation-export-name").value}));
      element.querySelector("#curation-merge").addEventListener("click", () => edit("/api/curation/merge", {dataset: dataset(), other: $("curation-merge-other").value, name: $("curation-merge-name").value}));
      element.querySelector("#curation-play").addEventListener("click", () => (playing && playing.playing ? stop() : resume()));
      element.querySelector("#curation-seek").addEventListener("input", (ev) => { stop(); show(Number(ev.target.value)); });
      // while playing, the next frame is drawn from the chosen camera anyway
      element.querySelector("#curation-camera").addEventListener("change", () => playing && !playing.playing && show(playing.position));
      loadDatasets();
      setInterval(async () => {
        if (!element.offsetParent) return;  // the accordion is closed: nothing to refresh
        try {
          const answer = await getJSON("/api/curation/datasets");
          const editing = Boolean(answer.editing);
          showEdit(answer);
          if (!editing && JSON.stringify(answer.datasets) !== JSON.stringify(datasets)) await loadDatasets();
          else await loadEpisodes();
        } catch (err) { status(err.message, "failed"); }
      }, POLL_MS);
    },
  };
})();
