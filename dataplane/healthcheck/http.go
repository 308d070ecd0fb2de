package healthcheck

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// lineReaders are the buffers HTTP checks read status and header lines
// with; their size is the longest line a check accepts.
var lineReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, MaxCheckLine) }}

// http sends each request on its own connection (Connection: close); all
// must pass. Nothing a server sends is read beyond MaxCheckLine per line,
// MaxCheckHeaders of headers and MaxRead of body, and the body is read
// only when an expect needs it.
func (p *prober) http(ctx context.Context, t netip.AddrPort) (bool, string) {
	reqs := p.ck.httpRequests()
	var detail string
	for i := range reqs {
		ok, d := p.httpOne(ctx, t, &reqs[i])
		if len(reqs) > 1 {
			d = fmt.Sprintf("request %d (%s %s): %s", i+1, cmp.Or(reqs[i].Method, "GET"), cmp.Or(reqs[i].Path, "/"), d)
		}
		if !ok {
			return false, d
		}
		detail = d
	}
	if len(reqs) > 1 {
		detail = fmt.Sprintf("L7 %d requests ok", len(reqs))
	}
	return true, detail
}

func (p *prober) httpOne(ctx context.Context, t netip.AddrPort, r *HTTPRequest) (bool, string) {
	c, why := p.dial(ctx, t, true)
	if c == nil {
		return false, why
	}
	defer abort(c)
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\n", cmp.Or(r.Method, "GET"), cmp.Or(r.Path, "/"), cmp.Or(r.Host, t.String()))
	ua := false
	for _, h := range r.Headers {
		fmt.Fprintf(&req, "%s: %s\r\n", h.Name, h.Value)
		ua = ua || strings.EqualFold(h.Name, "User-Agent")
	}
	if !ua {
		req.WriteString("User-Agent: gitgw-check\r\n")
	}
	req.WriteString("Connection: close\r\n\r\n")
	if _, err := c.Write(req.Bytes()); err != nil {
		return false, "L7 send: " + shortErr(err)
	}
	br := lineReaders.Get().(*bufio.Reader)
	br.Reset(c)
	defer func() {
		br.Reset(nil)
		lineReaders.Put(br)
	}()

	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return false, fmt.Sprintf("L7 status line longer than %d bytes", MaxCheckLine)
	}
	if err != nil {
		return false, "L7 response: " + shortErr(err)
	}
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return false, "L7 bad status line"
	}
	code, err := strconv.Atoi(f[1])
	if err != nil || code < 100 || code > 999 {
		return false, "L7 bad status code"
	}
	if !statusOK(code, r.Status) {
		return false, fmt.Sprintf("L7 status %d", code)
	}
	if r.Expect == "" && r.ExpectRegex == "" {
		return true, fmt.Sprintf("L7 status %d", code)
	}

	// Headers: only their framing matters here.
	chunked, length := false, int64(-1)
	for total := 0; ; {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if errors.Is(err, bufio.ErrBufferFull) {
			return false, fmt.Sprintf("L7 status %d, a header line longer than %d bytes", code, MaxCheckLine)
		}
		if err != nil {
			return false, fmt.Sprintf("L7 status %d, headers: %s", code, shortErr(err))
		}
		if total > MaxCheckHeaders {
			return false, fmt.Sprintf("L7 status %d, headers longer than %d bytes", code, MaxCheckHeaders)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Content-Length")):
			if n, err := strconv.ParseInt(string(value), 10, 64); err == nil && n >= 0 {
				length = n
			}
		}
	}

	max := int64(p.max)
	var body io.Reader = br
	switch {
	case chunked:
		// Chunk framing is bounded too: at most twice the body's bound.
		body = httputil.NewChunkedReader(io.LimitReader(br, 2*max))
	case length >= 0:
		max = min(max, length)
	}
	b, err := io.ReadAll(io.LimitReader(body, max))
	if err != nil && len(b) == 0 {
		return false, fmt.Sprintf("L7 status %d, body: %s", code, shortErr(err))
	}
	if r.Expect != "" && !bytes.Contains(b, []byte(r.Expect)) {
		return false, fmt.Sprintf("L7 status %d, body lacks %q (%d bytes searched)", code, r.Expect, len(b))
	}
	if r.ExpectRegex != "" {
		re, err := p.regexp(r.ExpectRegex)
		if err != nil {
			return false, "check: expect_regex: " + err.Error()
		}
		if !re.Match(b) {
			return false, fmt.Sprintf("L7 status %d, body does not match %q (%d bytes searched)", code, r.ExpectRegex, len(b))
		}
	}
	return true, fmt.Sprintf("L7 status %d, body matches", code)
}

// statusOK: with no list, 2xx and 3xx pass (HAProxy's httpchk default).
func statusOK(code int, ranges []StatusRange) bool {
	if len(ranges) == 0 {
		return code >= 200 && code < 400
	}
	for _, r := range ranges {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// regexp compiles an expression once per check loop.
func (p *prober) regexp(expr string) (*regexp.Regexp, error) {
	if re, ok := p.res[expr]; ok {
		return re, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	if p.res == nil {
		p.res = map[string]*regexp.Regexp{}
	}
	p.res[expr] = re
	return re, nil
}
