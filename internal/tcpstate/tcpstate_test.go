package tcpstate

import (
	"slices"
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		names []string
		want  []State
	}{
		{[]string{"established"}, []State{Established}},
		{[]string{"close-wait", "time-wait"}, []State{TimeWait, CloseWait}},
		{[]string{"CLOSE_WAIT"}, []State{CloseWait}},
		{[]string{"listen"}, []State{Listen}},
		{[]string{"LISTEN"}, []State{Listen}},
		{[]string{"unconn"}, []State{Close}},
		{[]string{"fin_wait1"}, []State{FinWait1}},
		{[]string{"syn-recv"}, []State{SynRecv, NewSynRecv}},
		{[]string{"connected"}, []State{Established, SynSent, SynRecv, FinWait1, FinWait2, TimeWait, CloseWait, LastAck, Closing, NewSynRecv}},
		{[]string{"synchronized"}, []State{Established, SynRecv, FinWait1, FinWait2, TimeWait, CloseWait, LastAck, Closing, NewSynRecv}},
		{[]string{"bucket"}, []State{SynRecv, TimeWait, NewSynRecv}},
		{[]string{"big"}, []State{Established, SynSent, FinWait1, FinWait2, Close, CloseWait, LastAck, Listen, Closing}},
	}
	for _, tt := range tests {
		m, err := ParseFilter(tt.names)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", tt.names, err)
		}
		if got := m.States(); !slices.Equal(got, tt.want) {
			t.Errorf("ParseFilter(%q) = %v, want %v", tt.names, got, tt.want)
		}
	}
}

func TestParseFilterUnknownListsValid(t *testing.T) {
	_, err := ParseFilter([]string{"establshed"})
	if err == nil {
		t.Fatal("no error for a misspelt state")
	}
	for _, want := range []string{`"establshed"`, "established", "close-wait", "connected", "synchronized"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		s          State
		ss, kernel string
	}{
		{Established, "ESTAB", "ESTABLISHED"},
		{CloseWait, "CLOSE-WAIT", "CLOSE_WAIT"},
		{Close, "UNCONN", "CLOSE"},
		{Listen, "LISTEN", "LISTEN"},
		{State(42), "STATE-42", "STATE_42"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.ss {
			t.Errorf("%d.String() = %q, want %q", tt.s, got, tt.ss)
		}
		if got := tt.s.KernelName(); got != tt.kernel {
			t.Errorf("%d.KernelName() = %q, want %q", tt.s, got, tt.kernel)
		}
	}
}

// Default is what ss shows with neither -a nor -l: no listeners, no
// unconnected datagram sockets, no TIME-WAIT or SYN-RECV minisocks.
func TestDefaultMatchesSS(t *testing.T) {
	for _, s := range []State{Listen, Close, TimeWait, SynRecv, NewSynRecv} {
		if Default.Has(s) {
			t.Errorf("Default has %v", s)
		}
	}
	for _, s := range []State{Established, SynSent, FinWait1, FinWait2, CloseWait, LastAck, Closing} {
		if !Default.Has(s) {
			t.Errorf("Default lacks %v", s)
		}
	}
}
