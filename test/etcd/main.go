// Command etcd is an etcd server, one member or one of several, for
// mynet's multi-host tests, from go.etcd.io/etcd/server/v3/embed: the
// tests start it as a process of
// its own (in a network namespace of their own where they want one), so
// they can stop it with SIGSTOP, kill it and start it again on the same
// data. The mynet daemon never links the server; only this test tool does.
//
//	etcd -data-dir DIR -client http://198.18.0.1:2379 -peer http://198.18.0.1:2380
//
// With -name and -initial-cluster it is one member of a cluster of several
// (all started at once; a member restarted later rejoins from its data).
//
// It prints "ready" on stdout once it serves clients, stops on SIGTERM, and
// on SIGUSR1 compacts its history up to the current revision, printing
// "compacted REV", so that watches from an older revision fail. On SIGUSR2
// it deletes every key under /mynet/ in one request, as `etcdctl del
// --prefix /mynet/` does (leases stay), printing "deleted N".
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/pkg/v3/traceutil"
	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dir := flag.String("data-dir", "", "data directory (kept across restarts)")
	client := flag.String("client", "http://127.0.0.1:2379", "client URL to listen on")
	peer := flag.String("peer", "http://127.0.0.1:2380", "peer URL to listen on")
	name := flag.String("name", "mynet-test", "member name")
	initial := flag.String("initial-cluster", "", "NAME=PEER_URL,... of every member of a new cluster (default: this member alone)")
	flag.Parse()
	if err := run(*dir, *client, *peer, *name, *initial); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
}

func run(dir, client, peer, name, initial string) error {
	cu, err := url.Parse(client)
	if err != nil {
		return err
	}
	pu, err := url.Parse(peer)
	if err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	if initial != "" {
		cfg.InitialCluster = initial
	}
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		return fmt.Errorf("not ready after 30 s")
	}
	fmt.Println("ready")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	compact := make(chan os.Signal, 1)
	signal.Notify(compact, syscall.SIGUSR1)
	wipe := make(chan os.Signal, 1)
	signal.Notify(wipe, syscall.SIGUSR2)
	for {
		select {
		case <-stop:
			return nil
		case err := <-e.Err():
			return err
		case <-compact:
			kv := e.Server.KV()
			rev := kv.Rev()
			done, err := kv.Compact(traceutil.TODO(), rev)
			if err != nil {
				return fmt.Errorf("compact at %d: %w", rev, err)
			}
			<-done
			fmt.Println("compacted", rev)
		case <-wipe:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := e.Server.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("/mynet/"), RangeEnd: []byte("/mynet0")})
			cancel()
			if err != nil {
				return fmt.Errorf("delete /mynet/: %w", err)
			}
			fmt.Println("deleted", res.Deleted)
		}
	}
}
