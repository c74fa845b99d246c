package ssfilter

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// TCP states, numbered as the kernel's TCP_* (and ss's SS_*) constants.
const (
	StateUnknown     = 0 // ss accepts "state unknown": bit 0, no socket has it
	StateEstablished = 1
	StateSynSent     = 2
	StateSynRecv     = 3
	StateFinWait1    = 4
	StateFinWait2    = 5
	StateTimeWait    = 6
	StateClose       = 7
	StateCloseWait   = 8
	StateLastAck     = 9
	StateListen      = 10
	StateClosing     = 11
	StateNewSynRecv  = 12 // kernel-only; ss and the kernel fold it into SynRecv
)

// State masks ss uses (bit i = state i).
const (
	// StatesAll is ss's SS_ALL ("state all", and -a).
	StatesAll uint32 = 1<<12 - 1
	// StatesConn is ss's SS_CONN: what ss -t shows without -a, -l or a
	// state filter.
	StatesConn = StatesAll &^ (1<<StateListen | 1<<StateClose | 1<<StateTimeWait | 1<<StateSynRecv)
	// StatesListening is what -l selects (LISTEN and CLOSE).
	StatesListening uint32 = 1<<StateListen | 1<<StateClose
)

// stateNames are the names ss's scan_state accepts (case-insensitively).
var stateNames = map[string]uint32{
	"close":        1 << StateClose,
	"closed":       1 << StateClose,
	"syn-rcv":      1 << StateSynRecv,
	"all":          StatesAll,
	"connected":    StatesAll &^ (1<<StateClose | 1<<StateListen),
	"synchronized": StatesAll &^ (1<<StateClose | 1<<StateListen | 1<<StateSynSent),
	"bucket":       1<<StateSynRecv | 1<<StateTimeWait,
	"big":          StatesAll &^ (1<<StateSynRecv | 1<<StateTimeWait),
	"unknown":      1 << StateUnknown,
	"established":  1 << StateEstablished,
	"syn-sent":     1 << StateSynSent,
	"syn-recv":     1 << StateSynRecv,
	"fin-wait-1":   1 << StateFinWait1,
	"fin-wait-2":   1 << StateFinWait2,
	"time-wait":    1 << StateTimeWait,
	"unconnected":  1 << StateClose,
	"close-wait":   1 << StateCloseWait,
	"last-ack":     1 << StateLastAck,
	"listening":    1 << StateListen,
	"closing":      1 << StateClosing,
}

// Filter is a parsed ss FILTER: [ state/exclude ... ] [ EXPRESSION ].
type Filter struct {
	// States is the mask the state/exclude words built (bit i = TCP state
	// i), meaningful when StatesGiven; see StateMask.
	States      uint32
	StatesGiven bool
	// Family is the address family (unix.AF_INET, AF_INET6, AF_UNIX) of the
	// last host written with a FAMILY: prefix, or 0. ss then shows sockets
	// of that family only, whatever the expression says.
	Family uint8
	// Expr is the boolean expression; nil when there is none (all match).
	Expr *Expr
}

// StateMask is the state mask ss -t uses. flags is what its flags chose:
// StatesAll for -a, StatesListening for -l, 0 for neither. State words
// replace it; when there are none and no flag, or the words cancel out
// ("exclude all"), ss falls back to the TCP default, StatesConn (not to
// the -a mask: -tan exclude all shows the StatesConn sockets).
func (f *Filter) StateMask(flags uint32) uint32 {
	m := flags
	if f.StatesGiven {
		m = f.States
	}
	if m == 0 {
		m = StatesConn
	}
	return m
}

// Match reports whether ss -t with flags (see StateMask) would show s:
// state, family and expression together. The kernel's NEW_SYN_RECV
// counts as SYN_RECV, as in inet_diag.
func (f *Filter) Match(s *Sock, flags uint32) bool {
	st := uint32(s.State)
	if st == StateNewSynRecv {
		st = StateSynRecv
	}
	if st >= 32 || f.StateMask(flags)&(1<<st) == 0 {
		return false
	}
	if f.Family != 0 && s.Family != f.Family {
		return false
	}
	return f.Expr.Match(s)
}

// Options carry what ss takes from its flags and from the system.
type Options struct {
	// Family is ss's preferred family (-4, -6, -f); 0 for none. Hosts are
	// parsed in it, as if written with its FAMILY: prefix.
	Family uint8
	// Service resolves a port name (":https"). nil: the tcp entries of
	// /etc/services, as ss's getservbyname does for -t.
	Service func(name string) (int, bool)
	// Ifindex resolves a device name for dev. nil: net.InterfaceByName.
	Ifindex func(name string) (uint32, bool)
	// CgroupID resolves a cgroup path for cgroup. nil: the inode number of
	// the path under the cgroup2 mount, which is the cgroup id.
	CgroupID func(path string) (uint64, error)
	// Ephemeral is the local port range (inclusive) ss's userspace
	// autobound test uses; zero: read /proc/sys/net/ipv4/ip_local_port_range
	// (1024-4999 if unreadable, as ss).
	Ephemeral [2]int
}

// Parse parses the arguments ss takes after its flags, one word or many.
// Errors are one line and name the offending word.
func Parse(args []string, opts *Options) (*Filter, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	f := &Filter{}

	// The state words are whole arguments, as main() in ss.c compares
	// them: "state established" as a single argument is not a state filter.
	for len(args) > 0 && (args[0] == "state" || args[0] == "exclude" || args[0] == "excl") {
		if len(args) < 2 {
			return nil, fmt.Errorf("%q needs a state name", args[0])
		}
		m, ok := stateNames[strings.ToLower(args[1])]
		if !ok {
			return nil, fmt.Errorf("wrong state name: %q", args[1])
		}
		if args[0] == "state" {
			if !f.StatesGiven {
				f.States = 0
			}
			f.States |= m
		} else {
			if !f.StatesGiven {
				f.States = StatesAll
			}
			f.States &^= m
		}
		f.StatesGiven = true
		args = args[2:]
	}

	p := &parser{words: splitArgs(args), opts: &o, fam: o.Family, filter: f, last: tEOF}
	if o.Family != 0 {
		f.Family = o.Family
	}
	if err := p.lexAll(); err != nil {
		return nil, err
	}
	if p.peek().kind == tEOF {
		return f, nil
	}
	e, err := p.list()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.syntax(t)
	}
	if e.hasAuto() {
		e.setEphemeral(o.ephemeral())
	}
	e.prog, e.progOK = e.Bytecode()
	e.compiled = true
	f.Expr = e
	return f, nil
}

// ParseString splits s on blanks and tabs (with backslash escapes) like ss
// and parses it; state words must then be separate words too.
func ParseString(s string, opts *Options) (*Filter, error) {
	return Parse(splitArgs([]string{s}), opts)
}

type token struct {
	kind tokKind
	word string
	val  *Expr // a parsed value for tValue: a leaf missing its op
}

type parser struct {
	words  []string
	toks   []token
	pos    int
	opts   *Options
	fam    uint8   // ss's preferred_family, changed by FAMILY: prefixes
	last   tokKind // the last keyword seen: decides what a value is
	filter *Filter
}

// lexAll classifies every word up front. ss does this lazily, so for an
// input with both a syntax error and a bad value it may name the other
// one first; either way the input is refused.
func (p *parser) lexAll() error {
	for _, w := range p.words {
		if k, ok := keywords[w]; ok {
			switch k {
			case tDst, tSrc, tDport, tSport, tDev, tFwmark, tCgroup, tAutobound:
				p.last = k
			}
			p.toks = append(p.toks, token{kind: k, word: w})
			continue
		}
		v, err := p.value(w)
		if err != nil {
			return err
		}
		p.toks = append(p.toks, token{kind: tValue, word: w, val: v})
	}
	return nil
}

// value parses a non-keyword word as what the last keyword calls for.
func (p *parser) value(w string) (*Expr, error) {
	switch p.last {
	case tDev:
		idx, err := p.devIndex(w)
		if err != nil {
			return nil, err
		}
		return &Expr{op: opDev, ifindex: idx}, nil
	case tFwmark:
		mark, mask, ok := parseMarkMask(w)
		if !ok {
			return nil, fmt.Errorf("cannot parse mark %q", w)
		}
		return &Expr{op: opMark, mark: mark, mask: mask}, nil
	case tCgroup:
		id, err := p.cgroupID(w)
		if err != nil {
			return nil, fmt.Errorf("cannot parse cgroup %q: %v", w, err)
		}
		return &Expr{op: opCgroup, cgroup: id}, nil
	}
	h, err := p.host(w, p.last == tSport || p.last == tDport)
	if err != nil {
		return nil, fmt.Errorf("bad host %q: %v", w, err)
	}
	return &Expr{host: h}, nil
}

func (p *parser) peek() token {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return token{kind: tEOF}
}

func (p *parser) next() token {
	t := p.peek()
	if p.pos < len(p.toks) {
		p.pos++
	}
	return t
}

func (p *parser) syntax(t token) error {
	if t.kind == tEOF {
		return fmt.Errorf("syntax error at end of filter")
	}
	return fmt.Errorf("syntax error at %q", t.word)
}

// startsExpr reports whether k can begin an expr, for juxtaposition.
func startsExpr(k tokKind) bool {
	switch k {
	case tLParen, tNot, tDst, tSrc, tDport, tSport, tDev, tFwmark, tCgroup, tAutobound:
		return true
	}
	return false
}

// list parses ss's exprlist. The grammar is
//
//	exprlist: expr | exprlist '|' expr | exprlist '&' expr | exprlist expr
//
// so "or", "and" and juxtaposition all bind equally and group from the
// left: a or b and c is (a or b) and c, not what the man page says.
func (p *parser) list() (*Expr, error) {
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		var op exprOp
		switch {
		case t.kind == tOr:
			op = opOr
			p.next()
		case t.kind == tAnd:
			op = opAnd
			p.next()
		case startsExpr(t.kind):
			op = opAnd
		default:
			return e, nil
		}
		r, err := p.expr()
		if err != nil {
			return nil, err
		}
		e = &Expr{op: op, a: e, b: r}
	}
}

// expr parses one ss expr: a parenthesized list, a negation (which takes
// one expr only: "not a and b" is "(not a) and b"), or a predicate.
func (p *parser) expr() (*Expr, error) {
	t := p.next()
	switch t.kind {
	case tLParen:
		e, err := p.list()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, p.syntax(c)
		}
		return e, nil
	case tNot:
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &Expr{op: opNot, a: e}, nil
	case tAutobound:
		return &Expr{op: opAuto}, nil
	case tDst, tSrc:
		// dst/src take only an optional "=".
		if p.peek().kind == tEq {
			p.next()
		}
		v, err := p.val()
		if err != nil {
			return nil, err
		}
		v.op = opSCond
		if t.kind == tDst {
			v.op = opDCond
		}
		return v, nil
	case tSport, tDport:
		return p.portCmp(t.kind == tSport)
	case tDev, tFwmark, tCgroup:
		neg := false
		switch p.peek().kind {
		case tEq:
			p.next()
		case tNeq:
			p.next()
			neg = true
		}
		v, err := p.val()
		if err != nil {
			return nil, err
		}
		if neg {
			return &Expr{op: opNot, a: v}, nil
		}
		return v, nil
	}
	return nil, p.syntax(t)
}

// val takes the value after a keyword. A host where a device was due (or
// the other way round) cannot happen: the lexer already made the value
// the kind the last keyword wants.
func (p *parser) val() (*Expr, error) {
	t := p.next()
	if t.kind != tValue {
		return nil, p.syntax(t)
	}
	v := *t.val
	return &v, nil
}

// portCmp parses sport/dport OP HOST. ss turns > and < into negations of
// <= and >=, and != into a negated equality; we keep that shape because
// it decides the bytecode and matters for ports that cannot occur (-1).
func (p *parser) portCmp(src bool) (*Expr, error) {
	opTok := p.peek().kind
	switch opTok {
	case tGeq, tLeq, tGt, tLt, tEq, tNeq:
		p.next()
	default:
		opTok = tEq // "sport :80": no operator means "="
	}
	v, err := p.val()
	if err != nil {
		return nil, err
	}
	ge, le, eq := opSGE, opSLE, opSCond
	if !src {
		ge, le, eq = opDGE, opDLE, opDCond
	}
	switch opTok {
	case tGeq:
		v.op = ge
	case tLeq:
		v.op = le
	case tGt:
		v.op = le
		return &Expr{op: opNot, a: v}, nil
	case tLt:
		v.op = ge
		return &Expr{op: opNot, a: v}, nil
	case tEq:
		v.op = eq
	case tNeq:
		v.op = eq
		return &Expr{op: opNot, a: v}, nil
	}
	return v, nil
}

// noteFamily records a FAMILY: prefix (or -f) as ss's parse_hostcond does:
// the shown families shrink to that one, and later hosts default to it.
func (p *parser) noteFamily(fam uint8) {
	if fam == unix.AF_UNSPEC {
		return
	}
	p.filter.Family = fam
	p.fam = fam
}
