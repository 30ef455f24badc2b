"""scout-admin: the operator's command. It runs the services' own domain code against the
database directly (no gateway), so what it does is exactly what the API does."""
