"""What both HTTP adapters (api/ and web/) need: the pool and settings dependencies, the
signed-in actor from a bearer token or the session cookie, the CSRF check, the one error format
and the request middleware. api/ and web/ import this package, never each other."""
