"""HTTP for devices and clients. Routes parse input, call one service, serialise the result."""
