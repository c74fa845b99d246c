package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// nlmsg builds one netlink message with seq 7.
func nlmsg(typ uint16, payload []byte) []byte {
	b := make([]byte, nlmsgAlignLen(nlmsgHdrLen+len(payload)))
	binary.NativeEndian.PutUint32(b[0:], uint32(nlmsgHdrLen+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], 7)
	copy(b[nlmsgHdrLen:], payload)
	return b
}

func errnoPayload(errno unix.Errno) []byte {
	b := make([]byte, 4+nlmsgHdrLen) // struct nlmsgerr: error, then the request's header
	binary.NativeEndian.PutUint32(b, uint32(-int32(errno)))
	return b
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestWalkMessages(t *testing.T) {
	data := nlmsg(unix.SOCK_DIAG_BY_FAMILY, []byte{1, 2, 3})
	tests := []struct {
		name     string
		in       []byte
		wantMsgs int
		wantDone bool
		wantErr  string
		wantIs   error
	}{
		{"two messages, more to come", concat(data, data), 2, false, "", nil},
		{"done ends the dump", concat(data, nlmsg(unix.NLMSG_DONE, []byte{0, 0, 0, 0})), 1, true, "", nil},
		{"done carrying an error", nlmsg(unix.NLMSG_DONE, errnoPayload(unix.ENOBUFS)[:4]), 0, true, "tcp_diag dump: no buffer space available", unix.ENOBUFS},
		{"missing diag module", nlmsg(unix.NLMSG_ERROR, errnoPayload(unix.ENOENT)), 0, true, "tcp_diag not available", unix.ENOENT},
		{"other errno", nlmsg(unix.NLMSG_ERROR, errnoPayload(unix.EINVAL)), 0, true, "tcp_diag dump: invalid argument", unix.EINVAL},
		{"short header", data[:10], 0, false, "truncated", errTruncated},
		{"length beyond the datagram", data[:nlmsgHdrLen+1], 0, false, "truncated", errTruncated},
		{"length below the header", func() []byte {
			b := append([]byte(nil), data...)
			binary.NativeEndian.PutUint32(b, 3)
			return b
		}(), 0, false, "truncated", errTruncated},
		{"message of another dump skipped", func() []byte {
			b := append([]byte(nil), data...)
			binary.NativeEndian.PutUint32(b[8:], 6)
			return b
		}(), 0, false, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := 0
			done, err := walkMessages(tt.in, 7, "tcp_diag", func([]byte) error { msgs++; return nil })
			if msgs != tt.wantMsgs || done != tt.wantDone {
				t.Errorf("got %d messages, done %v; want %d, %v", msgs, done, tt.wantMsgs, tt.wantDone)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.wantIs)):
				t.Errorf("error %v, want one containing %q and wrapping %v", err, tt.wantErr, tt.wantIs)
			}
		})
	}
}

func TestAttrs(t *testing.T) {
	attr := func(typ uint16, val string) []byte {
		b := make([]byte, nlmsgAlignLen(rtaHdrLen+len(val)))
		binary.NativeEndian.PutUint16(b, uint16(rtaHdrLen+len(val)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		copy(b[rtaHdrLen:], val)
		return b
	}
	type seen struct {
		typ uint16
		val string
	}
	collect := func(b []byte) ([]seen, error) {
		var got []seen
		err := attrs(b, func(typ uint16, v []byte) { got = append(got, seen{typ, string(v)}) })
		return got, err
	}

	got, err := collect(concat(attr(4, "cubic\x00"), attr(8, "\x03"), attr(21|unix.NLA_F_NESTED, "12345678")))
	want := []seen{{4, "cubic\x00"}, {8, "\x03"}, {21, "12345678"}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("attrs = %+v, %v; want %+v", got, err, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("attribute %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// The last attribute may lack its padding: the kernel does not pad the
	// end of a message.
	if got, err := collect(attr(8, "\x01")[:5]); err != nil || len(got) != 1 {
		t.Errorf("unpadded last attribute: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{
		attr(8, "abcd")[:6],      // length beyond the data
		{2, 0, 8, 0, 0, 0, 0, 0}, // length below the header
	} {
		if _, err := collect(bad); !errors.Is(err, errTruncated) {
			t.Errorf("attrs(%x) error %v, want truncated", bad, err)
		}
	}
}
