// Gamepad teleop for Foresight Console (the browser Gamepad API): while a pad is connected, its
// sticks go to /api/teleop every POLL_MS as end-effector axes (dx, dy, dz, droll, dpitch, dyaw),
// with this tab's id. The server applies the dead zone, so a stick pushed past it takes over.
// Button 0 (A / cross) toggles the gripper. When the pad disconnects nothing more is sent: the
// server counts input older than 300 ms as released and the arm holds.
(() => {
  const POLL_MS = 50;
  // Standard mapping: axes 0/1 left stick, 2/3 right stick; triggers are buttons 6/7.
  const toAxes = (pad) => {
    const a = pad.axes, b = pad.buttons;
    const trigger = (i) => (b[i] ? b[i].value : 0);
    return [-(a[1] || 0), -(a[0] || 0), trigger(7) - trigger(6), 0, -(a[3] || 0), -(a[2] || 0)];
  };
  const stats = window.gamepadStats = {connected: false, sent: 0};
  let wasPressed = false;
  setInterval(() => {
    const pads = navigator.getGamepads ? [...navigator.getGamepads()].filter(Boolean) : [];
    stats.connected = pads.length > 0;
    if (!pads.length) return;
    const pad = pads[0];
    const pressed = !!(pad.buttons[0] && pad.buttons[0].pressed);
    const toggle = pressed && !wasPressed;
    wasPressed = pressed;
    fetch("/api/teleop", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({keys: [], axes: toAxes(pad), toggle_gripper: toggle, client: window.consoleClientId || ""}),
    }).catch(() => {});
    stats.sent += 1;
  }, POLL_MS);
})();
