"""The WAMP side: the heartbeat listener, and the RegistryAgent drop-in."""
