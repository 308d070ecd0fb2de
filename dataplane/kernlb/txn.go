package kernlb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// txn is one Set's transaction: the messages of one nftables batch, in
// order, sent with a single sendmsg and acknowledged once.
//
// Tables, chains, rules and set definitions are marshalled by
// google/nftables, on a connection whose dial is a recorder (rec): its
// Flush hands the marshalled messages to record instead of the kernel.
// Set elements, tens of thousands when 100 Maglev maps change, are encoded
// here straight into the message (elemMessages), without the library's
// allocations per element. The library also asks an acknowledgement for
// every message and reads them one by one (hundreds of receives per
// batch); here only the last message asks for one: the kernel processes a
// batch within sendmsg and reports every failed message anyway.
type txn struct {
	rec      *nftables.Conn
	recorded []mdnetlink.Message
	msgs     []mdnetlink.Message
	elems    int  // elements queued (for the log and the benchmark)
	dirty    bool // the library has queued messages since the last sync
	err      error
}

// lib is the library's connection, for one queued operation.
func (t *txn) lib() *nftables.Conn {
	t.dirty = true
	return t.rec
}

func newTxn() (*txn, error) {
	t := &txn{}
	// Lasting: one recorder connection for the whole transaction, not a
	// new one on each of its hundreds of syncs.
	rec, err := nftables.New(nftables.WithTestDial(t.record), nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("kernlb: nftables recorder: %w", err)
	}
	t.rec = rec
	return t, nil
}

// record receives the library's batch: BATCH_BEGIN, the messages,
// BATCH_END. With no request it plays the kernel's acknowledgement.
func (t *txn) record(req []mdnetlink.Message) ([]mdnetlink.Message, error) {
	if req == nil {
		return []mdnetlink.Message{{Header: mdnetlink.Header{Type: mdnetlink.Error}, Data: make([]byte, 4+unix.SizeofNlMsghdr)}}, nil
	}
	if len(req) >= 2 {
		t.recorded = append(t.recorded, req[1:len(req)-1]...)
	}
	return nil, nil
}

// sync moves what the library queued so far into the batch, so that what
// is queued next comes after it.
func (t *txn) sync() {
	if !t.dirty {
		return
	}
	t.dirty = false
	err := t.rec.Flush()
	t.msgs = append(t.msgs, t.recorded...)
	t.recorded = t.recorded[:0]
	if err != nil && t.err == nil {
		t.err = fmt.Errorf("kernlb: marshal: %w", err)
	}
}

// maxElemAttr bounds the element list of one message: a netlink
// attribute's length is 16 bits. A set with more elements takes several
// messages.
const maxElemAttr = 60000

// setElems queues the addition (NFT_MSG_NEWSETELEM) or deletion
// (NFT_MSG_DELSETELEM) of elems in set. An element may have a key, a
// value and the interval-end flag: the program uses nothing else.
func (t *txn) setElems(op int, set *nftables.Set, elems []nftables.SetElement) {
	if len(elems) == 0 {
		return
	}
	t.sync()
	t.elems += len(elems)
	head := func(n int) []byte {
		// Room for n elements of this set's size.
		per := 4 + 12 + len(elems[0].Key) + 3 + 12 + len(elems[0].Val) + 3
		b := make([]byte, 4, 64+min(n*per, maxElemAttr+256))
		b[0], b[1] = byte(set.Table.Family), unix.NFNETLINK_V0
		b = putAttr(b, unix.NFTA_SET_ELEM_LIST_TABLE, cstr(set.Table.Name))
		b = putAttr(b, unix.NFTA_SET_ELEM_LIST_SET, cstr(set.Name))
		if set.ID != 0 {
			b = putAttr(b, unix.NFTA_SET_ELEM_LIST_SET_ID, binary.BigEndian.AppendUint32(nil, set.ID))
		}
		return b
	}
	for len(elems) > 0 {
		b := head(len(elems))
		list := len(b)
		b = append(b, 0, 0, 0, 0)
		n := 0
		for ; n < len(elems) && len(b)-list < maxElemAttr; n++ {
			e := &elems[n]
			if len(e.KeyEnd) > 0 || e.VerdictData != nil || e.Timeout != 0 || e.Comment != "" {
				t.err = errors.Join(t.err, fmt.Errorf("kernlb: set %s: element %x: unsupported fields", set.Name, e.Key))
				return
			}
			item := len(b)
			b = append(b, 0, 0, 0, 0)
			if e.IntervalEnd {
				b = putAttr(b, unix.NFTA_SET_ELEM_FLAGS, binary.BigEndian.AppendUint32(nil, unix.NFT_SET_ELEM_INTERVAL_END))
			}
			b = putNested(b, unix.NFTA_SET_ELEM_KEY, unix.NFTA_DATA_VALUE, e.Key)
			if len(e.Val) > 0 && op == unix.NFT_MSG_NEWSETELEM {
				b = putNested(b, unix.NFTA_SET_ELEM_DATA, unix.NFTA_DATA_VALUE, e.Val)
			}
			endAttr(b, item, unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED)
		}
		endAttr(b, list, unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED)
		elems = elems[n:]
		t.msgs = append(t.msgs, mdnetlink.Message{
			Header: mdnetlink.Header{
				Type:  mdnetlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | op),
				Flags: mdnetlink.Request | mdnetlink.Create,
			},
			Data: b,
		})
	}
}

func cstr(s string) []byte { return append([]byte(s), 0) }

// putAttr appends a netlink attribute (host-endian header, padded to 4).
func putAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// putNested appends outer{inner: data}.
func putNested(b []byte, outer, inner uint16, data []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = putAttr(b, inner, data)
	endAttr(b, start, outer|unix.NLA_F_NESTED)
	return b
}

// endAttr writes the header of the attribute that starts at start and ends
// at the end of b.
func endAttr(b []byte, start int, typ uint16) {
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	binary.NativeEndian.PutUint16(b[start+2:], typ)
}

// commit sends the batch on nl as one transaction and waits for its
// outcome: the acknowledgement of the last message, or the errors of the
// messages the kernel refused (it then applies none of them).
func (t *txn) commit(nl *mdnetlink.Conn) error {
	t.sync()
	_ = t.rec.CloseLasting()
	if t.err != nil {
		return t.err
	}
	if len(t.msgs) == 0 {
		return nil
	}
	batchHdr := func(typ int) mdnetlink.Message {
		return mdnetlink.Message{Header: mdnetlink.Header{Type: mdnetlink.HeaderType(typ), Flags: mdnetlink.Request},
			Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}}
	}
	msgs := make([]mdnetlink.Message, 0, len(t.msgs)+2)
	msgs = append(msgs, batchHdr(unix.NFNL_MSG_BATCH_BEGIN))
	for _, m := range t.msgs {
		m.Header.Flags &^= mdnetlink.Acknowledge
		m.Header.Sequence = 0
		msgs = append(msgs, m)
	}
	msgs[len(msgs)-1].Header.Flags |= mdnetlink.Acknowledge
	msgs = append(msgs, batchHdr(unix.NFNL_MSG_BATCH_END))
	sent, err := nl.SendMessages(msgs)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	last := sent[len(sent)-2].Header.Sequence
	if err := nl.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	for {
		replies, err := nl.Receive()
		if err != nil {
			// An error message: the kernel refused the batch.
			return err
		}
		for _, r := range replies {
			if r.Header.Type == mdnetlink.Error && r.Header.Sequence == last {
				return nil
			}
		}
	}
}
