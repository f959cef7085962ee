package main

import (
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr bool
	}{
		{"defaults", nil, nil, config{"/run/docker/plugins/mynet.sock", "/var/lib/mynet", logrus.InfoLevel, 10 * time.Second, "auto"}, false},
		{"env", nil, map[string]string{"MYNET_SOCKET": "/tmp/a.sock", "MYNET_STATE_DIR": "/tmp/st", "MYNET_LOG_LEVEL": "debug"},
			config{"/tmp/a.sock", "/tmp/st", logrus.DebugLevel, 10 * time.Second, "auto"}, false},
		{"LOG_LEVEL alias", nil, map[string]string{"LOG_LEVEL": "warn"}, config{"/run/docker/plugins/mynet.sock", "/var/lib/mynet", logrus.WarnLevel, 10 * time.Second, "auto"}, false},
		{"flags beat env", []string{"--socket", "/x/b.sock", "--log-level", "error"}, map[string]string{"MYNET_SOCKET": "/tmp/a.sock"},
			config{"/x/b.sock", "/var/lib/mynet", logrus.ErrorLevel, 10 * time.Second, "auto"}, false},
		{"reconcile interval", []string{"--reconcile-interval", "0"}, map[string]string{"MYNET_RECONCILE_INTERVAL": "3s"},
			config{"/run/docker/plugins/mynet.sock", "/var/lib/mynet", logrus.InfoLevel, 0, "auto"}, false},
		{"bad interval", []string{"--reconcile-interval", "soon"}, nil, config{}, true},
		{"iptables backend", []string{"--iptables-backend", "legacy"}, nil,
			config{"/run/docker/plugins/mynet.sock", "/var/lib/mynet", logrus.InfoLevel, 10 * time.Second, "legacy"}, false},
		{"bad backend", nil, map[string]string{"MYNET_IPTABLES_BACKEND": "ebtables"}, config{}, true},
		{"bad level", []string{"--log-level", "loud"}, nil, config{}, true},
		{"relative socket", []string{"--socket", "mynet.sock"}, nil, config{}, true},
		{"stray argument", []string{"start"}, nil, config{}, true},
		{"unknown flag", []string{"--nope"}, nil, config{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Errorf("accepted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}
