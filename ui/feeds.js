// Camera feeds for Foresight Console. Each <img data-camera> reads its MJPEG stream with fetch(),
// so the page knows every frame's capture time: it shows frames/s and frame age under each feed
// (window.feedStats holds the same numbers for tests and benchmarks). Reconnects when a stream ends.
(() => {
  const WINDOW_S = 2.0;        // frames/s measured over this window
  const RETRY_MS = 1000;       // wait before reconnecting a dropped feed
  const STALE_MS = 1500;       // no frame for this long: say so on the feed
  window.feedStats = window.feedStats || {};
  const started = new Set();

  const concat = (a, b) => { const c = new Uint8Array(a.length + b.length); c.set(a); c.set(b, a.length); return c; };
  const findHeaderEnd = (buf) => {
    for (let i = 0; i + 3 < buf.length; i++)
      if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
    return -1;
  };

  async function run(img) {
    const camera = img.dataset.camera;
    const caption = document.getElementById(`feed-stats-${camera}`);
    const stats = window.feedStats[camera] = {frames: 0, fps: 0, ageMs: null, ages: [], lastFrameAt: 0, width: 0, height: 0};
    // Blob URLs given to the <img>, oldest first. Once a picture is shown, every URL before it is
    // spent: frames can arrive faster than the browser decodes them, so one load may retire several.
    const handed = [];
    img.addEventListener("load", () => {
      stats.width = img.naturalWidth;  // of the picture on screen (naturalWidth reads 0 while the next decodes)
      stats.height = img.naturalHeight;
      while (handed.length && handed[0] !== img.currentSrc) URL.revokeObjectURL(handed.shift());
    });
    const times = [];
    const latin1 = new TextDecoder("latin1");
    setInterval(() => {
      if (caption && performance.now() - stats.lastFrameAt > STALE_MS) caption.textContent = "no signal";
    }, STALE_MS);
    for (;;) {
      try {
        const response = await fetch(`/feeds/${camera}.mjpg`, {cache: "no-store"});
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const reader = response.body.getReader();
        let buf = new Uint8Array(0);
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buf = concat(buf, value);
          for (;;) {
            const end = findHeaderEnd(buf);
            if (end < 0) break;
            const head = latin1.decode(buf.subarray(0, end));
            const length = parseInt((head.match(/Content-Length: (\d+)/) || [])[1], 10);
            const captured = parseFloat((head.match(/X-Frame-Time: ([0-9.]+)/) || [])[1]);
            if (!(length >= 0)) { buf = buf.subarray(end + 4); continue; }
            if (buf.length < end + 4 + length) break;
            const jpeg = buf.slice(end + 4, end + 4 + length);
            buf = buf.subarray(end + 4 + length);
            const url = URL.createObjectURL(new Blob([jpeg], {type: "image/jpeg"}));
            handed.push(url);
            img.src = url;
            const now = performance.now();
            times.push(now);
            while (times.length && now - times[0] > WINDOW_S * 1000) times.shift();
            stats.frames += 1;
            stats.lastFrameAt = now;
            stats.fps = times.length > 1 ? (times.length - 1) / ((now - times[0]) / 1000) : 0;
            stats.ageMs = Date.now() - captured * 1000;
            stats.ages.push(stats.ageMs);
            if (stats.ages.length > 2000) stats.ages.shift();
            if (caption) caption.textContent = `${camera} · ${stats.fps.toFixed(1)} fps · ${stats.ageMs.toFixed(0)} ms`;
          }
        }
      } catch (err) {
        if (caption) caption.textContent = `${camera} · reconnecting (${err.message})`;
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  // Gradio renders the page after this script runs: start each feed once its <img> appears.
  setInterval(() => {
    document.querySelectorAll("img[data-camera]").forEach((img) => {
      if (!started.has(img.dataset.camera)) { started.add(img.dataset.camera); run(img); }
    });
  }, 200);
})();
