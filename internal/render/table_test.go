package render

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func TestParseFormat(t *testing.T) {
	if f, err := ParseFormat("JSON", Table, JSON); err != nil || f != JSON {
		t.Errorf("ParseFormat(JSON) = %q, %v", f, err)
	}
	_, err := ParseFormat("yaml", Table, JSON, NDJSON)
	if err == nil || !strings.Contains(err.Error(), `"yaml"`) || !strings.Contains(err.Error(), "table, json, ndjson") {
		t.Errorf("ParseFormat(yaml) error = %v, want one naming the value and listing the valid ones", err)
	}
}

func TestWriteTable(t *testing.T) {
	rows := [][]string{
		{"LISTEN", "0", "4096", "0.0.0.0:22"},
		{"ESTAB", "120", "0", "[::1]:5432"},
	}
	cols := []Column{{Title: "State"}, {Title: "Recv-Q", Right: true}, {Title: "Send-Q", Right: true}, {Title: "Local"}}
	var out bytes.Buffer
	err := WriteTable(&out, cols, len(rows), func(i int, buf []byte, ends []int) ([]byte, []int) {
		for _, c := range rows[i] {
			buf = append(buf, c...)
			ends = append(ends, len(buf))
		}
		return buf, ends
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"State   Recv-Q  Send-Q  Local\n" +
		"LISTEN       0    4096  0.0.0.0:22\n" +
		"ESTAB      120       0  [::1]:5432\n"
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestWriteJSONList(t *testing.T) {
	type item struct {
		N int `json:"n"`
	}
	for _, n := range []int{0, 1, 3} {
		var arr, nd bytes.Buffer
		elem := func(i int) any { return item{i} }
		if err := WriteJSONList(&arr, false, n, elem); err != nil {
			t.Fatal(err)
		}
		var got []item
		if err := json.Unmarshal(arr.Bytes(), &got); err != nil || len(got) != n {
			t.Errorf("n=%d: array %q does not parse to %d items: %v", n, arr.String(), n, err)
		}
		if err := WriteJSONList(&nd, true, n, elem); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(nd.String(), "\n"), "\n")
		if n == 0 {
			lines = nil
		}
		if len(lines) != n {
			t.Fatalf("n=%d: %d ndjson lines", n, len(lines))
		}
		for i, l := range lines {
			if l != `{"n":`+strconv.Itoa(i)+`}` {
				t.Errorf("line %d = %q", i, l)
			}
		}
	}
}
