package ssfilter

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// inet_diag bytecode op codes (linux/inet_diag.h).
const (
	bcNop        = 0
	bcJmp        = 1
	bcSGE        = 2
	bcSLE        = 3
	bcDGE        = 4
	bcDLE        = 5
	bcAuto       = 6
	bcSCond      = 7
	bcDCond      = 8
	bcDevCond    = 9
	bcMarkCond   = 10
	bcSEq        = 11
	bcDEq        = 12
	bcCgroupCond = 13
)

// AttrBytecode is INET_DIAG_REQ_BYTECODE, the request attribute that
// carries the program.
const AttrBytecode = 1

// Bytecode compiles the expression to an inet_diag program for the
// INET_DIAG_REQ_BYTECODE attribute of an inet_diag_req_v2 dump.
//
// The program is the kernel's: a run of struct inet_diag_bc_op {u8 code;
// u8 yes; u16 no} each followed by its operand, where a true test moves
// on by yes and a false one by no, and the socket is taken if the run
// ends exactly at the end (a jump to end+4 rejects). Every yes here is the
// op's own length, which the kernel's audit needs to find jump targets.
//
// It returns false where ss sends no bytecode and tests everything in
// user space: a dev condition (ss never compiles DEV_COND) or a unix
// host. A nil Expr gives (nil, true): no filter. Callers still run Match
// on what the kernel returns, as ss runs its user-space test after it.
func (e *Expr) Bytecode() ([]byte, bool) {
	if e == nil {
		return nil, true
	}
	if !e.compilable() {
		return nil, false
	}
	var a assembler
	reject := a.label()
	a.compile(e, reject)
	a.bind(reject)
	a.labels[reject] += 4 // one op past the end: the kernel's "no"
	prog, ok := a.link()
	return prog, ok
}

func (e *Expr) compilable() bool {
	if e == nil {
		return true
	}
	switch e.op {
	case opDev:
		return false
	case opSCond, opDCond:
		if e.host.family != unix.AF_UNSPEC && e.host.family != unix.AF_INET && e.host.family != unix.AF_INET6 {
			return false
		}
	}
	return e.a.compilable() && e.b.compilable()
}

type fixup struct {
	at    int // offset of the op whose "no" is patched
	label int
}

type assembler struct {
	code   []byte
	labels []int // offset, -1 while unbound
	fixups []fixup
}

func (a *assembler) label() int {
	a.labels = append(a.labels, -1)
	return len(a.labels) - 1
}

func (a *assembler) bind(l int) { a.labels[l] = len(a.code) }

// op appends an instruction whose false branch goes to label no; its
// operand follows it, and its true branch falls through to what follows.
func (a *assembler) op(code byte, no int, operand []byte) {
	at := len(a.code)
	a.code = append(a.code, code, byte(4+len(operand)), 0, 0)
	a.code = append(a.code, operand...)
	a.fixups = append(a.fixups, fixup{at, no})
}

// compile emits code that runs to its own end when e is true and jumps
// to label f when it is false.
func (a *assembler) compile(e *Expr, f int) {
	ne := binary.NativeEndian
	switch e.op {
	case opAnd:
		a.compile(e.a, f)
		a.compile(e.b, f)
	case opOr:
		tryB, end := a.label(), a.label()
		a.compile(e.a, tryB)
		a.op(bcJmp, end, nil) // a was true: skip b
		a.bind(tryB)
		a.compile(e.b, f)
		a.bind(end)
	case opNot:
		wasFalse := a.label()
		a.compile(e.a, wasFalse)
		a.op(bcJmp, f, nil) // a was true: not a is false
		a.bind(wasFalse)
	case opAuto:
		a.op(bcAuto, f, nil)
	case opSCond, opDCond:
		code := byte(bcSCond)
		if e.op == opDCond {
			code = bcDCond
		}
		h := e.host
		cond := make([]byte, 8)
		cond[0] = h.family
		cond[1] = byte(h.bits)
		ne.PutUint32(cond[4:], uint32(int32(h.port)))
		switch h.family {
		case unix.AF_INET:
			cond = append(cond, h.addr[:4]...)
		case unix.AF_INET6:
			cond = append(cond, h.addr[:]...)
		}
		a.op(code, f, cond)
	case opSGE, opSLE, opDGE, opDLE:
		code := map[exprOp]byte{opSGE: bcSGE, opSLE: bcSLE, opDGE: bcDGE, opDLE: bcDLE}[e.op]
		// The port rides in the "no" field of a second op; the kernel
		// compares it as u16, so ss's -1 ("*") becomes 65535.
		operand := make([]byte, 4)
		ne.PutUint16(operand[2:], uint16(e.host.port))
		a.op(code, f, operand)
	case opMark:
		operand := make([]byte, 8)
		ne.PutUint32(operand, e.mark)
		ne.PutUint32(operand[4:], e.mask)
		a.op(bcMarkCond, f, operand)
	case opCgroup:
		operand := make([]byte, 8)
		ne.PutUint64(operand, e.cgroup)
		a.op(bcCgroupCond, f, operand)
	case opDev:
		operand := make([]byte, 4)
		ne.PutUint32(operand, e.ifindex)
		a.op(bcDevCond, f, operand)
	default:
		panic("ssfilter: bad op")
	}
}

// link patches every "no" with its target's distance; false if a jump
// does not fit the u16.
func (a *assembler) link() ([]byte, bool) {
	for _, fx := range a.fixups {
		d := a.labels[fx.label] - fx.at
		if d < 4 || d > 0xffff {
			return nil, false
		}
		binary.NativeEndian.PutUint16(a.code[fx.at+2:], uint16(d))
	}
	return a.code, true
}

// RunBytecode runs an inet_diag program over s as the kernel's
// inet_diag_bc_run does (for a full socket; the kernel gives minisockets
// mark 0 and cgroup 0, which the caller puts in s). A malformed program
// never matches.
func RunBytecode(bc []byte, s *Sock) bool {
	ne := binary.NativeEndian
	saddr := sockAddr(s.Family, s.Local.Addr())
	daddr := sockAddr(s.Family, s.Remote.Addr())
	sport, dport := s.Local.Port(), s.Remote.Port()
	pc, n := 0, len(bc)
	for n > 0 {
		if pc+4 > len(bc) {
			return false
		}
		code, yes, no := bc[pc], int(bc[pc+1]), int(ne.Uint16(bc[pc+2:]))
		ok := true
		arg := bc[pc+4:]
		switch code {
		case bcNop:
		case bcJmp:
			ok = false
		case bcSGE, bcSLE, bcDGE, bcDLE:
			if len(arg) < 4 {
				return false
			}
			v := ne.Uint16(arg[2:])
			switch code {
			case bcSGE:
				ok = sport >= v
			case bcSLE:
				ok = sport <= v
			case bcDGE:
				ok = dport >= v
			case bcDLE:
				ok = dport <= v
			}
		case bcAuto:
			ok = s.Autobound
		case bcSCond, bcDCond:
			if len(arg) < 8 {
				return false
			}
			fam, plen, port := arg[0], int(arg[1]), int32(ne.Uint32(arg[4:]))
			addr, p := saddr, sport
			if code == bcDCond {
				addr, p = daddr, dport
			}
			cond := arg[8:]
			if port != -1 && port != int32(p) {
				ok = false
				break
			}
			if fam != unix.AF_UNSPEC && fam != s.Family {
				ok = fam == unix.AF_INET && s.Family == unix.AF_INET6 &&
					isMapped(addr) && len(cond) >= 4 && bitsMatch(addr[12:], cond, plen)
				break
			}
			if plen == 0 {
				break
			}
			if len(cond)*8 < plen {
				return false
			}
			ok = bitsMatch(addr[:], cond, plen)
		case bcDevCond:
			if len(arg) < 4 {
				return false
			}
			ok = ne.Uint32(arg) == s.Ifindex
		case bcMarkCond:
			if len(arg) < 8 {
				return false
			}
			ok = s.Mark&ne.Uint32(arg[4:]) == ne.Uint32(arg)
		case bcCgroupCond:
			if len(arg) < 8 {
				return false
			}
			ok = ne.Uint64(arg) == s.CgroupID
		}
		step := yes
		if !ok {
			step = no
		}
		if step == 0 {
			return false // the kernel's audit forbids it; we would loop
		}
		pc += step
		n -= step
	}
	return n == 0
}

// Audit checks a program as the kernel's inet_diag_bc_audit does, so a
// test can refuse what the kernel would answer with EINVAL.
func Audit(bc []byte) error {
	ne := binary.NativeEndian
	bad := errors.New("ssfilter: bytecode fails the kernel's audit")
	if len(bc) < 4 {
		return bad
	}
	// validTarget is valid_cc: a jump must land where walking the yes
	// chain from the start lands.
	validTarget := func(cc int) bool {
		l, pc := len(bc), 0
		for l >= 0 {
			if cc > l {
				return false
			}
			if cc == l {
				return true
			}
			y := int(bc[pc+1])
			if y < 4 || y&3 != 0 {
				return false
			}
			l -= y
			pc += y
		}
		return false
	}
	n, pc := len(bc), 0
	for n > 0 {
		if n < 4 {
			return bad
		}
		code := bc[pc]
		minLen := 4
		switch code {
		case bcSCond, bcDCond:
			minLen += 8
			if n < minLen {
				return bad
			}
			alen := map[byte]int{unix.AF_UNSPEC: 0, unix.AF_INET: 4, unix.AF_INET6: 16}
			l, ok := alen[bc[pc+4]]
			if !ok {
				return bad
			}
			minLen += l
			if n < minLen || int(bc[pc+5]) > 8*l {
				return bad
			}
		case bcDevCond:
			minLen += 4
		case bcSGE, bcSLE, bcDGE, bcDLE:
			minLen += 4
		case bcMarkCond, bcCgroupCond:
			minLen += 8
		case bcAuto, bcJmp, bcNop:
		default:
			return bad
		}
		if n < minLen {
			return bad
		}
		yes, no := int(bc[pc+1]), int(ne.Uint16(bc[pc+2:]))
		if code != bcNop {
			if no < minLen || no > n+4 || no&3 != 0 {
				return bad
			}
			if no < n && !validTarget(n-no) {
				return bad
			}
		}
		if yes < minLen || yes > n+4 || yes&3 != 0 {
			return bad
		}
		pc += yes
		n -= yes
	}
	if n != 0 {
		return bad
	}
	return nil
}
