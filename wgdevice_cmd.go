package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/mynet/mynet/internal/daemon"
	"github.com/mynet/mynet/internal/wgtunnel"
)

// tunnelText is what parseTunnel reads of the WireGuard flags.
type tunnelText struct{ port, pool *string }

// tunnelFlags declares the WireGuard flags of encrypted cluster networks.
func tunnelFlags(fs *flag.FlagSet, t *daemon.TunnelConfig, env func(string, ...string) string) tunnelText {
	fs.StringVar(&t.Mode, "cluster-wireguard", env(wgtunnel.ModeAuto, "MYNET_CLUSTER_WIREGUARD"),
		"the WireGuard of encrypted cluster networks: auto (the kernel's, else userspace wireguard-go on a tun), kernel or userspace (env MYNET_CLUSTER_WIREGUARD)")
	fs.StringVar(&t.Device, "cluster-wireguard-device", env("mynet-wg", "MYNET_CLUSTER_WIREGUARD_DEVICE"),
		"the WireGuard device's name (env MYNET_CLUSTER_WIREGUARD_DEVICE)")
	port := fs.String("cluster-wireguard-port", env("4800", "MYNET_CLUSTER_WIREGUARD_PORT"),
		"WireGuard's UDP port on the underlay, which other hosts send to (env MYNET_CLUSTER_WIREGUARD_PORT)")
	fs.StringVar(&t.PSKFile, "cluster-psk-file", env("", "MYNET_CLUSTER_PSK_FILE"),
		"a WireGuard pre-shared key (base64, mode 600; wg genpsk makes one), the same on every host: a second layer of symmetric encryption (env MYNET_CLUSTER_PSK_FILE)")
	pool := fs.String("cluster-tunnel-pool", env("", "MYNET_CLUSTER_TUNNEL_POOL"),
		"IPv4 CIDR of the hosts' tunnel addresses, chosen by the cluster's first host to encrypt; default: a free /22 of --cluster-default-address-pool (env MYNET_CLUSTER_TUNNEL_POOL)")
	return tunnelText{port: port, pool: pool}
}

// parseTunnel checks the WireGuard flags.
func parseTunnel(t *daemon.TunnelConfig, text tunnelText) error {
	port, err := strconv.Atoi(*text.port)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("--cluster-wireguard-port: %q is not a UDP port", *text.port)
	}
	t.Port = port
	if pool := *text.pool; pool != "" {
		p, err := netip.ParsePrefix(pool)
		if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
			return fmt.Errorf("--cluster-tunnel-pool: %q is not an IPv4 CIDR of at most /30", pool)
		}
		t.Pool = p.Masked()
	}
	if exe, err := os.Executable(); err == nil {
		t.Binary = exe
	}
	return (wgtunnel.Config{Name: t.Device, Port: t.Port, Mode: t.Mode}).Validate()
}

// runWGDevice is `mynet wg-device --name NAME --mtu N [--pid-file F]`: a
// userspace WireGuard device, which the daemon starts (in a session of
// its own) when the kernel has no WireGuard, and configures through its
// UAPI socket. It runs until SIGTERM or until its tun device is deleted.
func runWGDevice(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mynet wg-device", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "mynet-wg", "the device's name")
	mtu := fs.Int("mtu", 1420, "the device's MTU")
	pidFile := fs.String("pid-file", "", "write the process's pid here once the device answers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := logrus.New()
	log.SetOutput(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return wgtunnel.Serve(ctx, *name, *mtu, *pidFile, log.WithField("part", "wg-device"))
}
