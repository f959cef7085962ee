package e2e

import (
	"net"
	"time"
)

type netDialer struct{}

func (netDialer) dial(path string) (net.Conn, error) { return net.DialTimeout("unix", path, time.Second) }
