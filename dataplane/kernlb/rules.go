package kernlb

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rules reads the rules of one of the agent's chains, each as its comment
// and the fingerprint of its expressions (exprsPrint).
//
// It does not use google/nftables' GetRules: v0.3.0 reads a ct
// expression's direction (NFTA_CT_DIRECTION) as 4 bytes where the kernel
// dumps 1, and fails the whole chain ("attribute 3 is not a uint32"), so a
// table holding fnat's source rewrite (ct original daddr) could never be
// read back. The expressions are decoded here with the library's own
// Unmarshal, the direction widened first, so that a rule read back
// fingerprints as the rule rendered. An expression the library does not
// know is fingerprinted by its raw bytes: a rule someone else wrote into
// the agent's chain never passes for the agent's own.
func (lb *LB) rules(fam nftables.TableFamily, chain string) ([]RuleState, error) {
	data, err := mdnetlink.MarshalAttributes([]mdnetlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(TableName)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
	})
	if err != nil {
		return nil, err
	}
	msgs, err := lb.genNL.Execute(mdnetlink.Message{
		Header: mdnetlink.Header{Type: mdnetlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: mdnetlink.Request | mdnetlink.Dump},
		Data: append([]byte{byte(fam), unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		return nil, err
	}
	var out []RuleState
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		r, err := ruleState(byte(fam), m.Data[4:])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// ruleState decodes one rule's attributes.
func ruleState(fam byte, b []byte) (RuleState, error) {
	var r RuleState
	ad, err := mdnetlink.NewAttributeDecoder(b)
	if err != nil {
		return r, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_USERDATA:
			r.Comment, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
		case unix.NFTA_RULE_EXPRESSIONS:
			exprs, raw, err := decodeExprs(fam, ad.Bytes())
			if err != nil {
				return r, err
			}
			r.Exprs = exprsPrint(fam, exprs) + raw
		}
	}
	return r, ad.Err()
}

// decodeExprs decodes a rule's expression list: the expressions the
// library knows, and the raw bytes of those it does not (but dup, which
// exprsPrint leaves out).
func decodeExprs(fam byte, b []byte) ([]expr.Any, string, error) {
	list, err := mdnetlink.UnmarshalAttributes(b)
	if err != nil {
		return nil, "", err
	}
	var exprs []expr.Any
	raw := ""
	for _, elem := range list {
		attrs, err := mdnetlink.UnmarshalAttributes(elem.Data)
		if err != nil {
			return nil, "", err
		}
		var name string
		var data []byte
		for _, a := range attrs {
			switch a.Type &^ unix.NLA_F_NESTED {
			case unix.NFTA_EXPR_NAME:
				name = string(trimNul(a.Data))
			case unix.NFTA_EXPR_DATA:
				data = a.Data
			}
		}
		e := exprOfName(name)
		if name == "ct" {
			if data, err = widenCtDirection(data); err != nil {
				return nil, "", err
			}
		}
		switch {
		case name == "dup":
			continue
		case e == nil:
			raw += fmt.Sprintf("<%s:%x>;", name, data)
			continue
		}
		if err := expr.Unmarshal(fam, data, e); err != nil {
			return nil, "", fmt.Errorf("expression %s: %w", name, err)
		}
		// A verdict is an immediate into the verdict register.
		if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
			e = &expr.Verdict{}
			if err := expr.Unmarshal(fam, data, e); err != nil {
				return nil, "", fmt.Errorf("expression %s: %w", name, err)
			}
		}
		exprs = append(exprs, e)
	}
	return exprs, raw, nil
}

// widenCtDirection rewrites a ct expression's 1-byte direction as the
// 4 bytes google/nftables reads.
func widenCtDirection(data []byte) ([]byte, error) {
	attrs, err := mdnetlink.UnmarshalAttributes(data)
	if err != nil {
		return nil, err
	}
	for i, a := range attrs {
		if a.Type == unix.NFTA_CT_DIRECTION && len(a.Data) == 1 {
			// Length 0: MarshalAttributes computes it anew.
			attrs[i].Length, attrs[i].Data = 0, binary.BigEndian.AppendUint32(nil, uint32(a.Data[0]))
		}
	}
	return mdnetlink.MarshalAttributes(attrs)
}

func trimNul(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// exprOfName is a new expression of the kinds the agent writes, by
// their kernel name; nil for any other.
func exprOfName(name string) expr.Any {
	switch name {
	case "ct":
		return &expr.Ct{}
	case "meta":
		return &expr.Meta{}
	case "cmp":
		return &expr.Cmp{}
	case "payload":
		return &expr.Payload{}
	case "lookup":
		return &expr.Lookup{}
	case "immediate":
		return &expr.Immediate{}
	case "bitwise":
		return &expr.Bitwise{}
	case "nat":
		return &expr.NAT{}
	case "limit":
		return &expr.Limit{}
	case "dynset":
		return &expr.Dynset{}
	case "connlimit":
		return &expr.Connlimit{}
	case "hash":
		return &expr.Hash{}
	case "numgen":
		return &expr.Numgen{}
	case "counter":
		return &expr.Counter{}
	}
	return nil
}
