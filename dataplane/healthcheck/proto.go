package healthcheck

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"strconv"
)

// stepsFor turns a check into the sequence that runs it. The protocol
// checks are sequences too, with matchers that wait for a whole reply
// before they decide and say what the server answered when it is wrong.
func stepsFor(c *Check) ([]step, error) {
	switch c.Type {
	case CheckTCPExpect:
		var s []step
		if c.Send != "" {
			s = append(s, step{send: []byte(c.Send)})
		}
		return append(s, expectBytes([]byte(c.Expect))), nil
	case CheckSequence:
		return stepsFrom(c.Steps)
	case CheckSMTP:
		return []step{
			smtpReply("220", "greeting"),
			{send: []byte("EHLO " + cmp.Or(c.Domain, "localhost") + "\r\n")},
			smtpReply("250", "EHLO"),
			{send: []byte("QUIT\r\n")},
		}, nil
	case CheckRedis:
		s := []step{{send: []byte("PING\r\n")}, redisReply("+PONG", "PING")}
		if c.Role != "" {
			s = append(s, step{send: []byte("INFO replication\r\n")}, redisRole(c.Role))
		}
		return s, nil
	case CheckMySQL:
		s := []step{mysqlPacket(0, "handshake", func(p []byte) (verdict, string) {
			if p[0] != 10 {
				return fail, fmt.Sprintf("MySQL handshake: protocol %d, want 10", p[0])
			}
			return pass, ""
		})}
		if c.User != "" {
			s = append(s, step{send: mysqlLogin(c.User)}, mysqlPacket(2, "login", func(p []byte) (verdict, string) {
				if p[0] != 0 {
					return fail, fmt.Sprintf("MySQL login as %s: reply 0x%02x, want OK", c.User, p[0])
				}
				return pass, ""
			}), step{send: []byte{1, 0, 0, 0, 1}}) // COM_QUIT
		}
		return s, nil
	case CheckPgSQL:
		return []step{{send: pgStartup(cmp.Or(c.User, "gitgw"), c.Database)}, pgAuthRequest()}, nil
	case CheckLDAP:
		// An anonymous LDAPv3 simple bind, message 1 (HAProxy's ldap-check).
		return []step{{send: []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00}}, ldapBindResponse()}, nil
	}
	return nil, nil
}

// smtpReply waits for the last line of a reply ("250 …" after any "250-…")
// and wants its code.
func smtpReply(code, what string) step {
	return step{what: code + " " + what, match: func(b []byte) (verdict, string) {
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return needMore, ""
			}
			line := bytes.TrimRight(b[:i], "\r")
			b = b[i+1:]
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			if bytes.HasPrefix(line, []byte(code)) {
				return pass, ""
			}
			return fail, fmt.Sprintf("SMTP %s: %q, want %s", what, printable(line), code)
		}
		return needMore, ""
	}}
}

// redisReply wants the first line of the reply to start with want.
func redisReply(want, what string) step {
	return step{what: strconv.Quote(want), match: func(b []byte) (verdict, string) {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return needMore, ""
		}
		line := bytes.TrimRight(b[:i], "\r")
		if bytes.HasPrefix(line, []byte(want)) {
			return pass, ""
		}
		return fail, fmt.Sprintf("Redis %s: %q, want %s", what, printable(line), want)
	}}
}

// redisRole reads the role line of INFO replication.
func redisRole(role string) step {
	return step{what: "role:" + role, match: func(b []byte) (verdict, string) {
		if len(b) > 0 && b[0] == '-' {
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				return fail, fmt.Sprintf("Redis INFO replication: %q", printable(bytes.TrimRight(b[:i], "\r")))
			}
			return needMore, ""
		}
		i := bytes.Index(b, []byte("role:"))
		if i < 0 {
			return needMore, ""
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return needMore, ""
		}
		got := bytes.TrimRight(b[i+5:i+j], "\r")
		if string(got) == role {
			return pass, ""
		}
		return fail, fmt.Sprintf("Redis role %s, want %s", printable(got), role)
	}}
}

// mysqlPacket waits for one whole packet (3-byte length, sequence id) and
// hands its payload to check; an error packet fails with its message.
func mysqlPacket(seq byte, what string, check func(payload []byte) (verdict, string)) step {
	return step{what: "MySQL " + what, match: func(b []byte) (verdict, string) {
		if len(b) < 4 {
			return needMore, ""
		}
		n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		if n == 0 {
			return fail, "MySQL " + what + ": empty packet"
		}
		if len(b) < 4+n {
			return needMore, ""
		}
		p := b[4 : 4+n]
		if p[0] == 0xff {
			msg := p[1:]
			if len(msg) >= 2 {
				msg = msg[2:] // error code
			}
			if len(msg) > 0 && msg[0] == '#' && len(msg) >= 6 {
				msg = msg[6:] // SQL state
			}
			return fail, fmt.Sprintf("MySQL %s: error %q", what, printable(msg))
		}
		if b[3] != seq {
			return fail, fmt.Sprintf("MySQL %s: sequence %d, want %d", what, b[3], seq)
		}
		return check(p)
	}}
}

// mysqlLogin is a protocol-4.1 handshake response for user with no
// password, sequence 1 (what HAProxy's mysql-check post-41 sends).
func mysqlLogin(user string) []byte {
	p := binary.LittleEndian.AppendUint32(nil, 0x0200|0x8000|0x0001) // PROTOCOL_41, SECURE_CONNECTION, LONG_PASSWORD
	p = binary.LittleEndian.AppendUint32(p, 1<<24)                   // max packet
	p = append(p, 0x21)                                              // utf8
	p = append(p, make([]byte, 23)...)
	p = append(p, user...)
	p = append(p, 0, 0) // end of the name, empty auth response
	hdr := []byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), 1}
	return append(hdr, p...)
}

// pgStartup is a protocol 3.0 startup message.
func pgStartup(user, db string) []byte {
	p := binary.BigEndian.AppendUint32(make([]byte, 4), 3<<16)
	p = append(append(append(p, "user\x00"...), user...), 0)
	if db != "" {
		p = append(append(append(p, "database\x00"...), db...), 0)
	}
	p = append(p, 0)
	binary.BigEndian.PutUint32(p, uint32(len(p)))
	return p
}

// pgAuthRequest wants an authentication request (R): the server runs and
// accepts the user far enough to ask how it authenticates. An error
// response (E) fails with its message.
func pgAuthRequest() step {
	return step{what: "PostgreSQL authentication request (R)", match: func(b []byte) (verdict, string) {
		if len(b) == 0 {
			return needMore, ""
		}
		switch b[0] {
		case 'R':
			return pass, ""
		case 'E':
			if len(b) < 5 {
				return needMore, ""
			}
			n := int(binary.BigEndian.Uint32(b[1:5]))
			if n < 4 || n > 1<<16 {
				return fail, "PostgreSQL: malformed error response"
			}
			if len(b) < 1+n {
				return needMore, ""
			}
			// Fields: a type byte and a NUL-terminated string each; M is the message.
			for f := b[5 : 1+n]; len(f) > 1; {
				end := bytes.IndexByte(f[1:], 0)
				if end < 0 {
					break
				}
				if f[0] == 'M' {
					return fail, fmt.Sprintf("PostgreSQL: %q", printable(f[1:1+end]))
				}
				f = f[2+end:]
			}
			return fail, "PostgreSQL: error response"
		}
		return fail, fmt.Sprintf("PostgreSQL: reply type %q, want R", b[0])
	}}
}

// ldapBindResponse parses the BER of a BindResponse far enough to read
// its resultCode: 0 passes.
func ldapBindResponse() step {
	return step{what: "LDAP bind response", match: func(b []byte) (verdict, string) {
		// LDAPMessage ::= SEQUENCE { messageID INTEGER, protocolOp [APPLICATION 1] BindResponse }
		tag, body, _, v := berTLV(b)
		if v != pass {
			return v, "LDAP: malformed response"
		}
		if tag != 0x30 {
			return fail, fmt.Sprintf("LDAP: tag 0x%02x, want a sequence", tag)
		}
		tag, _, rest, v := berTLV(body)
		if v != pass || tag != 0x02 {
			return fail, "LDAP: no message id"
		}
		tag, op, _, v := berTLV(rest)
		if v != pass || tag != 0x61 {
			return fail, fmt.Sprintf("LDAP: operation 0x%02x, want a bind response", tag)
		}
		tag, code, _, v := berTLV(op)
		if v != pass || tag != 0x0a || len(code) != 1 {
			return fail, "LDAP: bind response without a result code"
		}
		if code[0] != 0 {
			return fail, fmt.Sprintf("LDAP bind: result code %d", code[0])
		}
		return pass, ""
	}}
}

// berTLV splits one BER element off b: needMore when b is too short,
// fail when the length is not one the check accepts.
func berTLV(b []byte) (tag byte, body, rest []byte, v verdict) {
	if len(b) < 2 {
		return 0, nil, nil, needMore
	}
	tag, n, off := b[0], int(b[1]), 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 3 {
			return tag, nil, nil, fail
		}
		if len(b) < 2+k {
			return 0, nil, nil, needMore
		}
		n = 0
		for _, x := range b[2 : 2+k] {
			n = n<<8 | int(x)
		}
		off += k
	}
	if len(b) < off+n {
		return 0, nil, nil, needMore
	}
	return tag, b[off : off+n], b[off+n:], pass
}

// printable bounds what a server's reply puts into a status line.
func printable(b []byte) string {
	if len(b) > 120 {
		b = b[:120]
	}
	return string(b)
}
