package wgtunnel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sirupsen/logrus"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// Serve runs a userspace WireGuard device on a new tun device called name
// (wireguard-go), answering wgctrl on its UAPI socket, until ctx ends or
// the tun device goes (deleted with ip link del, say): the body of mynet
// wg-device, which the daemon starts when the kernel has no WireGuard. The
// device comes up with no key and no peer: it carries nothing until the
// daemon configures it. pidFile, when set, is written once the socket
// listens, and removed on the way out.
func Serve(ctx context.Context, name string, mtu int, pidFile string, log *logrus.Entry) error {
	tdev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return fmt.Errorf("create tun device %q (is /dev/net/tun there?): %w", name, err)
	}
	logger := &device.Logger{
		Verbosef: func(f string, a ...any) { log.Debugf(f, a...) },
		Errorf:   func(f string, a ...any) { log.Errorf(f, a...) },
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), logger)
	defer dev.Close()
	file, err := ipc.UAPIOpen(name)
	if err != nil {
		return fmt.Errorf("open the UAPI socket of %q: %w", name, err)
	}
	uapi, err := ipc.UAPIListen(name, file)
	if err != nil {
		return fmt.Errorf("listen on the UAPI socket of %q: %w", name, err)
	}
	defer uapi.Close()
	defer os.Remove(filepath.Join(SocketDir, name+".sock"))
	go func() {
		for {
			c, err := uapi.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	if pidFile != "" {
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", pidFile, err)
		}
		defer os.Remove(pidFile)
	}
	log.WithFields(logrus.Fields{"device": name, "mtu": mtu}).Info("userspace WireGuard device up")
	select {
	case <-ctx.Done():
		log.Info("userspace WireGuard device stopped")
	case <-dev.Wait():
		log.Warn("userspace WireGuard device closed (its tun device went)")
	}
	return nil
}
