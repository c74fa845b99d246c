package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestLoadOrder(t *testing.T) {
	// What the Debian kernels have: the diag modules on inet_diag, which
	// one of them names with a dash; af_packet built in.
	deps := map[string][]string{
		"inet_diag": {},
		"tcp_diag":  {"inet_diag"},
		"udp_diag":  {"inet_diag"},
		"raw_diag":  {"inet_diag"},
		"unix_diag": {},
		"top":       {"mid_a", "mid_b"},
		"mid_a":     {"base"},
		"mid_b":     {"base"},
		"base":      {},
		"loop_a":    {"loop_b"},
		"loop_b":    {"loop_a"},
	}
	builtin := map[string]bool{"af_packet": true}
	depends := func(name string) ([]string, error) {
		if builtin[name] {
			return nil, nil
		}
		d, ok := deps[name]
		if !ok {
			t.Fatalf("asked for unknown module %s", name)
		}
		return d, nil
	}
	tests := []struct {
		want    []string
		order   []string
		errPart string
	}{
		{want: []string{"tcp_diag", "udp_diag", "inet_diag"}, order: []string{"inet_diag", "tcp_diag", "udp_diag"}},
		{want: []string{"tcp-diag", "unix_diag"}, order: []string{"inet_diag", "tcp_diag", "unix_diag"}},
		{want: []string{"af_packet", "raw_diag"}, order: []string{"inet_diag", "raw_diag"}},
		{want: []string{"top"}, order: []string{"base", "mid_a", "mid_b", "top"}},
		{want: []string{"loop_a"}, errPart: "cycle: loop_a → loop_b → loop_a"},
	}
	for _, tt := range tests {
		got, err := loadOrder(tt.want, depends)
		if tt.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("loadOrder(%v) error %v, want one containing %q", tt.want, err, tt.errPart)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.order) {
			t.Errorf("loadOrder(%v) = %v, %v; want %v", tt.want, got, err, tt.order)
		}
	}
}

// The fixtures are ELF objects holding only a .modinfo section, made with
//
//	printf 'license=GPL\0depends=inet_diag,nf-foo\0name=tcp_diag\0' >modinfo
//	objcopy -I binary -O elf64-x86-64 --rename-section .data=.modinfo modinfo fake_diag.ko
//
// and nodeps.ko the same with an empty "depends=".
func TestModinfoDepends(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/fake_diag.ko", []string{"inet_diag", "nf_foo"}},
		{"testdata/nodeps.ko", []string{}},
	}
	for _, tt := range tests {
		ko, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := modinfoDepends(ko)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("modinfoDepends(%s) = %#v, %v; want %#v", tt.file, got, err, tt.want)
		}
	}
	if _, err := modinfoDepends([]byte("not an ELF file")); err == nil {
		t.Error("modinfoDepends accepted a file that is not ELF")
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/net/ipv4/tcp_diag.ko.xz": "tcp_diag",
		"nf-conntrack.ko":                "nf_conntrack",
		"inet_diag":                      "inet_diag",
		"x.ko.zst":                       "x",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}
