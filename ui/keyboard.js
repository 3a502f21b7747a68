// Keyboard teleop for Foresight Console: sends the held keys to /api/teleop while any is held,
// and Escape to /api/estop. Keys typed into a text field are left alone.
(() => {
  const MOTION = new Set(["KeyW", "KeyS", "KeyA", "KeyD", "KeyR", "KeyF", "KeyQ", "KeyE",
                          "KeyT", "KeyG", "KeyZ", "KeyC"]);
  const HEARTBEAT_MS = 100;  // the server treats keys older than 300 ms as released
  const held = new Set();
  let timer = null;

  const typing = (e) => {
    const t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
  };
  const send = (toggle) => fetch("/api/teleop", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({keys: [...held], toggle_gripper: !!toggle}),
  }).catch(() => {});
  const heartbeat = () => {
    if (held.size === 0) { clearInterval(timer); timer = null; return; }
    send(false);
  };

  window.addEventListener("keydown", (e) => {
    if (e.code === "Escape") { fetch("/api/estop", {method: "POST"}); return; }
    if (typing(e)) return;
    if (e.code === "Space") { e.preventDefault(); if (!e.repeat) send(true); return; }
    if (!MOTION.has(e.code) || held.has(e.code)) return;
    held.add(e.code);
    send(false);
    if (!timer) timer = setInterval(heartbeat, HEARTBEAT_MS);
  });
  window.addEventListener("keyup", (e) => {
    if (held.delete(e.code)) send(false);
  });
  window.addEventListener("blur", () => { if (held.size) { held.clear(); send(false); } });
})();
