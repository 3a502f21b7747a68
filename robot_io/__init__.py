"""Devices behind small interfaces: robots, cameras, teleop inputs, policies, the simulation.

Method names follow LeRobot (`connect`, `get_observation`, `send_action`, `get_action`,
`disconnect`, `observation_features`, `action_features`) so LeRobot devices plug in unwrapped.
"""
