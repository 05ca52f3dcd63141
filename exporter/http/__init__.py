"""HTTP: the pages, TLS and basic auth from the web config file, and the healthcheck."""
