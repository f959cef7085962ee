// Package plugin is mynet's face to dockerd: one unix socket and one HTTP mux
// serving /Plugin.Activate, every /NetworkDriver.* and every /IpamDriver.*
// call. With dockerd in legacy plugin mode, both `-d mynet` and
// `--ipam-driver mynet` resolve to this socket.
//
// The package decodes requests into go-plugins-helpers' types, calls the
// driver and the allocator, and encodes their answers. It never touches the
// kernel. Errors are answered in Docker's form, {"Err": "..."} (IPAM answers
// carry the message under "Error" too, the field libnetwork's IPAM client
// reads), with a status from the error's kind: 400 for bad input (including
// malformed or oversized JSON), 404 for unknown objects or routes, 409 for
// conflicts, 500 otherwise. Docker shows the message to the CLI user.
//
// Beside Docker's calls the socket serves mynet's own: /mynet.Health (503
// with the report while unhealthy), /mynet.Status and /mynet.Reconcile, and
// every answered call is reported to an observer (the metrics). Client is
// the other side, for `mynet status` and the tests.
//
// Files: server.go the mux, the decoding and the answers; listen.go the
// socket (made, or handed over by systemd); client.go the Client.
package plugin
