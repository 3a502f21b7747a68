"""The one place that moves the robot: the session's control thread, its pure step functions,
safety, the chunk queue, recording and the snapshots the UI polls."""
