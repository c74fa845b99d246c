package render

import (
	"encoding/json"
	"testing"

	"github.com/socklife/socklife/tracer"
)

func TestLossSummary(t *testing.T) {
	for _, tc := range []struct {
		loss       tracer.Loss
		text, json string
	}{
		{tracer.Loss{RecursionKnown: true}, "0 lost", `{"ring_full":0,"recursion":0,"undecodable":0}`},
		{tracer.Loss{Recursion: 18, RecursionKnown: true}, "18 lost (ring full 0, recursion 18)", `{"ring_full":0,"recursion":18,"undecodable":0}`},
		{tracer.Loss{RingFull: 5, Recursion: 2, RecursionKnown: true, Undecodable: 1}, "8 lost (ring full 5, recursion 2, undecodable 1)", `{"ring_full":5,"recursion":2,"undecodable":1}`},
		// before 5.12: say that recursion is not counted, even at 0
		{tracer.Loss{}, "0 lost (recursion not counted before Linux 5.12)", `{"ring_full":0,"recursion":null,"undecodable":0}`},
		{tracer.Loss{RingFull: 3}, "3 lost (ring full 3, recursion not counted before Linux 5.12)", `{"ring_full":3,"recursion":null,"undecodable":0}`},
	} {
		if got := LossSummary(tc.loss); got != tc.text {
			t.Errorf("LossSummary(%+v) = %q, want %q", tc.loss, got, tc.text)
		}
		if got, err := json.Marshal(lossJSON(tc.loss)); err != nil || string(got) != tc.json {
			t.Errorf("lossJSON(%+v) = %s (%v), want %s", tc.loss, got, err, tc.json)
		}
	}
}
