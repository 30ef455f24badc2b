"""Generated gRPC contracts of Server Scout. Do not edit: run `make proto`."""
