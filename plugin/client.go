package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client speaks the plugin protocol to a daemon's unix socket, as dockerd
// does: `mynet status` and the tests use it.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient returns a client for the socket; each call gives up after
// timeout.
func NewClient(socket string, timeout time.Duration) *Client {
	return &Client{Socket: socket, http: &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}}
}

// Post sends body (JSON-encoded unless it is already []byte) to path and
// returns the status and the raw answer.
func (c *Client) Post(path string, body any) (int, []byte, error) {
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, nil, err
		}
	}
	res, err := c.http.Post("http://mynet"+path, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

// Call posts req to path and decodes a 200 answer into resp (which may be
// nil). Any other status is an error that carries the answer's Err.
func (c *Client) Call(path string, req, resp any) error {
	code, out, err := c.Post(path, req)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		var e errorBody
		_ = json.Unmarshal(out, &e)
		return fmt.Errorf("%s: %d %s", path, code, e.Err)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("%s: decode answer: %w", path, err)
	}
	return nil
}
