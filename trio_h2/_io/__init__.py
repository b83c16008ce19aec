"""The trio layer: sockets, TLS, the connection runner, the server and its workers."""
