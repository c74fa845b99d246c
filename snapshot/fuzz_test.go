package snapshot

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The decoders read bytes from the kernel; a newer or buggy kernel must get
// an error out of them, never a panic. The seeds are the real messages of
// the captured fixtures.

// fixtureMessages returns the payloads of every message in the fixtures
// whose file name starts with prefix.
func fixtureMessages(f *testing.F, prefix string) [][]byte {
	f.Helper()
	var out [][]byte
	for _, fq := range fixtureQueries {
		if prefix != "" && fq.name[:len(prefix)] != prefix {
			continue
		}
		data, err := os.ReadFile(filepath.Join("testdata", fq.name+".nl"))
		if err != nil {
			f.Fatal(err)
		}
		if _, err := walkMessages(data, 0, "fixture", func(p []byte) error {
			out = append(out, append([]byte(nil), p...))
			return nil
		}); err != nil {
			f.Fatal(err)
		}
	}
	if len(out) == 0 {
		f.Fatalf("no fixture messages for %q", prefix)
	}
	return out
}

func FuzzDecodeInet(f *testing.F) {
	for _, m := range append(fixtureMessages(f, "tcp"), fixtureMessages(f, "udp")...) {
		f.Add(m, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, tcp bool) {
		proto := UDP
		if tcp {
			proto = TCP
		}
		var s Socket
		var a arena
		if err := decodeInet(b, proto, &s, &a); err != nil {
			return
		}
		if s.Family != unix.AF_INET && s.Family != unix.AF_INET6 {
			t.Errorf("decoded family %d without an error", s.Family)
		}
		if s.Local.Addr().Is4() != (s.Family == unix.AF_INET) {
			t.Errorf("family %d with local address %v", s.Family, s.Local)
		}
	})
}

func FuzzDecodeUnix(f *testing.F) {
	for _, m := range fixtureMessages(f, "unix") {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Socket
		if err := decodeUnix(b, &s, &arena{}); err == nil && s.Protocol != Unix {
			t.Errorf("decoded protocol %v", s.Protocol)
		}
	})
}

// FuzzDumpStream feeds whole datagrams through the same path a live dump
// takes: message framing, then the decoder. The first byte picks the decoder.
func FuzzDumpStream(f *testing.F) {
	for i, fq := range fixtureQueries {
		data, err := os.ReadFile(filepath.Join("testdata", fq.name+".nl"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{byte(i)}, data...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		q := fixtureQueries[int(data[0])%len(fixtureQueries)].q
		var a arena
		var s Socket
		walkMessages(data[1:], 0, q.module(), func(p []byte) error { return q.decode(p, &s, &a) })
	})
}
