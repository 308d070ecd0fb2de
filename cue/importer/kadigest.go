package importer

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// A keepalived url with a digest passes when the MD5 of the page's body
// is the one given (as `genhash` prints it), besides its status. gitgw's
// HTTP check compares no digest, and dropping it would pass a server
// that serves other content, which keepalived marks down. So an HTTP_GET
// with a digest becomes a command check that makes keepalived's own
// request (HTTP/1.0, its User-Agent, Host the virtualhost or the
// server's address and port) to the server the proxy checks
// (GITGW_SERVER_ADDR, GITGW_SERVER_PORT), and compares each url's status
// and digest: every url must pass, as in keepalived. It needs bash (for
// /dev/tcp), GNU sed and md5sum on the node (every systemd distribution
// has them); SSL_GET also the openssl command.

// digestScript is the check, run by bash. Its first argument is the
// number N of openssl s_client options that follow (0: plain HTTP; for
// SSL_GET at least one, since keepalived verifies no certificate and
// s_client goes on whatever the verification says); then each url as
// five arguments: path, extra header lines (printf %b), Host (empty: the
// server's address and port), the accepted statuses ("200-299 301") and
// the digest (empty: none). It holds no single quote: it is given
// single-quoted.
const digestScript = `h=$GITGW_SERVER_ADDR; [[ $h == *:* ]] && h="[$h]"; h=$h:$GITGW_SERVER_PORT; ` +
	`n=$1; shift; T=("${@:1:n}"); shift "$n"; ` +
	`while (( $# >= 5 )); do ` +
	`printf -v q "GET %s HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\n%bHost: %s\r\n\r\n" "$1" "$2" "${3:-$h}"; ` +
	`if (( n > 0 )); then exec 3< <(printf %s "$q" | openssl s_client -quiet -ign_eof -connect "$h" "${T[@]}" 2>/dev/null); ` +
	`else exec 3<>"/dev/tcp/$GITGW_SERVER_ADDR/$GITGW_SERVER_PORT" && printf %s "$q" >&3 || exit 1; fi; ` +
	`IFS=" " read -r _ c _ <&3 && [[ $c =~ ^[1-5][0-9][0-9] ]] || exit 1; c=${c:0:3}; ok=1; ` +
	`for r in $4; do (( c >= ${r%-*} && c <= ${r#*-} )) && ok=0; done; (( ok == 0 )) || exit 1; ` +
	`if [ -n "$5" ]; then [ "$(sed "0,/^\r\{0,1\}\$/d" <&3 | md5sum)" = "$5  -" ] || exit 1; fi; ` +
	`exec 3<&-; shift 5; done`

// digestCommand is the command check of an HTTP_GET's or SSL_GET's urls;
// tls, for SSL_GET, gives the client certificate and the SNI.
func digestCommand(reqs []httpRequest, tls *checkTLS) string {
	var b strings.Builder
	b.WriteString("exec bash -c " + shQuote(digestScript) + " keepalived-http-get")
	var opts []string
	if tls != nil {
		// keepalived sends an SNI only with enable_sni.
		opts = append(opts, "-noservername")
		if tls.sni.ok {
			opts = []string{"-servername", tls.sni.v}
		}
		if tls.crt.ok {
			opts = append(opts, "-cert", tls.crt.v, "-key", tls.key.v)
		}
	}
	b.WriteString(" " + fmt.Sprint(len(opts)))
	for _, o := range opts {
		b.WriteString(" " + shQuote(o))
	}
	for _, r := range reqs {
		var hdrs strings.Builder
		for _, h := range r.headers {
			fmt.Fprintf(&hdrs, `%s: %s\r\n`, h.name, strings.ReplaceAll(h.value, `\`, `\\`))
		}
		statuses := r.statuses
		if r.expectStatus.ok {
			statuses = []string{fmt.Sprint(r.expectStatus.v)}
		}
		for _, a := range []string{r.path, hdrs.String(), r.host, strings.Join(statuses, " "), r.digest} {
			b.WriteString(" " + shQuote(a))
		}
	}
	return b.String()
}

// shQuote quotes s for sh: single quotes, each ' written '\”.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// udpScript is keepalived's UDP_CHECK, run by bash with the payload
// (printf %b escapes), the seconds to wait for a reply and whether one is
// required (1 or 0): a reply passes; an error (the ICMP port unreachable
// a closed port answers with) fails; no reply passes unless required.
const udpScript = `exec 3<>"/dev/udp/$GITGW_SERVER_ADDR/$GITGW_SERVER_PORT" && printf %b "$1" >&3 || exit 1; ` +
	`read -r -t "$2" -N 1 _ <&3; rc=$?; (( rc == 0 || (rc > 128 && $3 == 0) ))`

// udpPayload is what keepalived sends without a payload: 32 bytes of
// "keepalived check - " repeated (layer4.c set_buf).
const udpPayload = "keepalived check - keepalived ch"

// udpCheck maps a UDP_CHECK onto a command check: the proxy's own checks
// are TCP. The command waits for a reply connect_timeout long, and the
// check's timeout is a second longer, so that no reply within it counts
// as keepalived counts it, not as a check that ran out of time.
func udpCheck(d kaDirective, srv netip.AddrPort, w *warnings) (*check, []need) {
	port := int(srv.Port())
	c := &check{kind: "command", timeout: some(5 * time.Second), rise: some(1), fall: some(1)}
	var ns []need
	payload := []byte(udpPayload)
	require := "0"
	for _, e := range d.Block {
		arg := strings.Join(e.Args, " ")
		switch e.Name {
		case "connect_timeout", "retry", "nb_get_retry":
			checkTiming(e, arg, c, w)
		case "connect_port":
			if v, err := integer(arg, 1, 65535); err != nil {
				ns = append(ns, needs(e.Pos, FeatCheckPort, "connect_port %s", arg))
			} else if v != port {
				c.port = some(v)
			}
		case "connect_ip":
			ns = append(ns, connectIP(e, arg, srv.Addr(), c)...)
		case "payload":
			b, err := hex.DecodeString(strings.ReplaceAll(arg, " ", ""))
			if err != nil || len(b) == 0 {
				// keepalived reports it and sends its own.
				w.add(e.Pos, "payload %s: not hexadecimal bytes: keepalived sends its own, so does the site", arg)
				continue
			}
			payload = b
		case "require_reply":
			require = "1"
			if len(e.Args) > 0 {
				ns = append(ns, needs(e.Pos, FeatProtocolCheck, "require_reply %s (a reply to compare)", arg))
			}
		case "min_reply_length", "max_reply_length":
			ns = append(ns, needs(e.Pos, FeatProtocolCheck, "%s %s", e.Name, arg))
		default:
			w.add(e.Pos, "UDP_CHECK %s: not mapped", e.Name)
		}
	}
	var esc strings.Builder
	for _, b := range payload {
		fmt.Fprintf(&esc, `\x%02x`, b)
	}
	wait := c.timeout.v
	c.timeout = some(wait + time.Second)
	c.cmd = "exec bash -c " + shQuote(udpScript) + " keepalived-udp-check " + shQuote(esc.String()) + " " +
		strconv.FormatFloat(wait.Seconds(), 'f', -1, 64) + " " + require
	w.add(d.Pos, "UDP_CHECK: imported as a command check sending keepalived's datagram (it runs bash on the node); it waits connect_timeout for a reply, the check's timeout is a second longer")
	return c, ns
}
