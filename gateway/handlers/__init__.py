"""HTTP handlers of the gateway's public API, one module per resource."""
