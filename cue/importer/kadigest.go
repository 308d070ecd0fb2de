package importer

import (
	"fmt"
	"strings"
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
