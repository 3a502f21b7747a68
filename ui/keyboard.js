// Keyboard teleop for Foresight Console: sends the held keys to /api/teleop while any is held,
// and Escape (or the E-stop button) to /api/estop. Keys typed into a text field are left alone. Every request carries
// this tab's id (window.consoleClientId): the session lets one tab hold control at a time, and a
// motion key takes over at once when the policy is running or holding. The Take over / Release
// buttons post to /api/control with the same id.
(() => {
  const MOTION = new Set(["KeyW", "KeyS", "KeyA", "KeyD", "KeyR", "KeyF", "KeyQ", "KeyE",
                          "KeyT", "KeyG", "KeyZ", "KeyC"]);
  const HEARTBEAT_MS = 100;  // the server treats keys older than 300 ms as released
  const held = new Set();
  let timer = null;

  const stored = sessionStorage.getItem("consoleClientId");
  const clientId = window.consoleClientId = stored || `tab-${Math.random().toString(36).slice(2, 8)}`;
  sessionStorage.setItem("consoleClientId", clientId);

  const typing = (e) => {
    const t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
  };
  const post = (url, body) => fetch(url, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  }).catch(() => {});
  const send = (toggle) => post("/api/teleop", {keys: [...held], toggle_gripper: !!toggle, client: clientId});
  window.consoleControl = (action) => post("/api/control", {action, client: clientId});
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
  // Gradio renders the buttons after this script runs: listen on the document. The E-stop button
  // posts straight to /api/estop, never through Gradio's event queue, so a busy page cannot delay it.
  document.addEventListener("click", (e) => {
    if (e.target.closest && e.target.closest("#btn-estop")) { fetch("/api/estop", {method: "POST"}); return; }
    const button = e.target.closest && e.target.closest("#btn-takeover, #btn-release");
    if (button) window.consoleControl(button.id === "btn-takeover" ? "take" : "release");
  });
})();
