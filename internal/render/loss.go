package render

import (
	"fmt"

	"github.com/socklife/socklife/tracer"
)

// LossCauses says what a loss count is made of, for the end-of-run
// summaries and top's header: "" when nothing was lost and every cause is
// counted; else "ring full R, recursion M" (and undecodable records, if
// any), saying when this kernel does not count recursion misses.
func LossCauses(l tracer.Loss) string {
	recursion := fmt.Sprintf("recursion %d", l.Recursion)
	if !l.RecursionKnown {
		recursion = "recursion not counted before Linux 5.12"
	}
	if l.Total() == 0 {
		if l.RecursionKnown {
			return ""
		}
		return recursion
	}
	s := fmt.Sprintf("ring full %d, %s", l.RingFull, recursion)
	if l.Undecodable > 0 {
		s += fmt.Sprintf(", undecodable %d", l.Undecodable)
	}
	if l.ListenerAcceptsFull > 0 {
		s += fmt.Sprintf(", listener accepts map full %d", l.ListenerAcceptsFull)
	}
	return s
}

// appendLoss appends " (causes)" to a loss count, if there is anything to say.
func appendLoss(b []byte, l tracer.Loss) []byte {
	if c := LossCauses(l); c != "" {
		b = fmt.Appendf(b, " (%s)", c)
	}
	return b
}

// LossSummary is a loss count with its causes: "18 lost (ring full 0,
// recursion 18)".
func LossSummary(l tracer.Loss) string {
	return string(appendLoss(fmt.Appendf(nil, "%d lost", l.Total()), l))
}

// LossJSON is tracer.Loss by cause, beside a "lost" total; recursion is
// null where the kernel does not count it (before 5.12).
type LossJSON struct {
	RingFull    uint64  `json:"ring_full"`
	Recursion   *uint64 `json:"recursion"`
	Undecodable uint64  `json:"undecodable"`
}

func lossJSON(l tracer.Loss) LossJSON {
	j := LossJSON{RingFull: l.RingFull, Undecodable: l.Undecodable}
	if l.RecursionKnown {
		j.Recursion = &l.Recursion
	}
	return j
}
