"""Metered devices: showers, water, laundry, computer labs and the campus bus charge by use,
through a hold placed when a session starts and captured when it ends."""
