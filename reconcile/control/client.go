package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
)

// Client talks to an agent's control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// MaxReply bounds what the client reads of one answer: the status of a
// node with thousands of instances is a few MiB.
const MaxReply = 64 << 20

// ErrNoAgent is returned when nothing listens on the socket.
var ErrNoAgent = errors.New("no agent is listening")

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://gitgw"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if _, serr := os.Stat(c.path); serr != nil || errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("control socket %s: %w (is the agent running?)", c.path, ErrNoAgent)
		}
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxReply+1))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	if len(b) > MaxReply {
		return fmt.Errorf("control socket %s: reply larger than %d MiB", c.path, MaxReply>>20)
	}
	if resp.StatusCode == http.StatusNotImplemented || resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("control socket %s: %s %s: %w", c.path, method, path, ErrNotServed)
	}
	if resp.StatusCode >= 300 {
		var e errorReply
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("control socket %s: %s", c.path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], b...)
		return nil
	}
	return json.Unmarshal(b, out)
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// StatusJSON returns the agent's status as it sent it.
func (c *Client) StatusJSON(ctx context.Context) ([]byte, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &raw)
	return raw, err
}

// Reconcile asks for a pass; with wait it returns the pass's result.
func (c *Client) Reconcile(ctx context.Context, wait bool) (ReconcileReply, error) {
	var r ReconcileReply
	p := "/v1/reconcile"
	if wait {
		p += "?wait=1"
	}
	err := c.do(ctx, http.MethodPost, p, nil, &r)
	return r, err
}

// Suspend stops applying.
func (c *Client) Suspend(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodPost, "/v1/suspend", nil, &st)
	return st, err
}

// Resume applies again and clears every override.
func (c *Client) Resume(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodPost, "/v1/resume", nil, &st)
	return st, err
}

// Override sets an override.
func (c *Client) Override(ctx context.Context, req OverrideRequest) (Override, error) {
	var o Override
	err := c.do(ctx, http.MethodPost, "/v1/overrides", req, &o)
	return o, err
}

// Clear clears the overrides on target ("" for all).
func (c *Client) Clear(ctx context.Context, target string) ([]Override, error) {
	var out []Override
	p := "/v1/overrides"
	if target != "" {
		p += "?target=" + url.QueryEscape(target)
	}
	err := c.do(ctx, http.MethodDelete, p, nil, &out)
	return out, err
}
