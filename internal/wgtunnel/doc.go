// Package wgtunnel owns this host's WireGuard device, which carries the
// VXLAN of encrypted cluster networks between hosts: its private key, the
// device itself (the kernel's where the kernel has WireGuard, else a
// wireguard-go process of its own on a tun), its peers (the other hosts,
// by public key) and what it tells of them (handshakes and bytes).
//
// The data plane outlives the daemon: a kernel device is the kernel's; a
// userspace one runs in a process of its own (mynet wg-device, started in
// a session of its own), which a restarted daemon finds by its UAPI socket
// and adopts. Both are configured through wgctrl alone, so that what
// differs between the two paths is how the device is made.
//
// Files: key.go the private key and the optional pre-shared key; device.go
// making, adopting and configuring the device; userspace.go the wg-device
// process; peers.go what the device has of its peers.
package wgtunnel
