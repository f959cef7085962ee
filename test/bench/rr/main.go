// Command rr measures TCP request/response round trips for mynet's
// benchmark: `rr serve PORT` echoes one byte per request; `rr ping HOST:PORT
// N` sends N one-byte requests on one connection, each after the previous
// answer, and prints the median round trip in microseconds.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: rr serve PORT | rr ping HOST:PORT N")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2])
	case "ping":
		n := 10000
		if len(os.Args) > 3 {
			n, _ = strconv.Atoi(os.Args[3])
		}
		err = ping(os.Args[2], n)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func serve(port string) error {
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func ping(addr string, n int) error {
	var c net.Conn
	var err error
	for range 50 { // the server may still be starting
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetNoDelay(true)
	buf := []byte{1}
	rtts := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	fmt.Printf("%.1f\n", float64(rtts[len(rtts)/2].Nanoseconds())/1000)
	return nil
}
